// Immich's machine-learning API, so Immich can use clipserve as its ML server for smart
// search: GET /ping and POST /predict (multipart: "entries" JSON + "image" or "text"), read
// from Immich's server/src/repositories/machine-learning.repository.ts (the client) and
// machine-learning/immich_ml/main.py + models/clip/*.py (the server it replaces).
#include "core/check.h"
#include "image/decode.h"
#include "server/codec.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

// Immich's answer for a request it cannot parse.
[[noreturn]] void invalid_format(const std::string& why) {
  throw StatusError(422, "invalid_request", "Invalid request format: " + why);
}

// The embedding as Immich's ML server returns it: a JSON array serialized into a string.
std::string embedding_string(const Embeddings& e) {
  std::string s;
  append_float_array(s, e.row(0), e.dim);
  return s;
}

}  // namespace

void install_immich_routes(httplib::Server& http, ModelAccess models) {
  http.Get("/ping", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("pong", "text/plain");
  });

  http.Post("/predict", [models](const httplib::Request& req, httplib::Response& res) {
    models.require_serving();
    if (!req.is_multipart_form_data()) {
      throw StatusError(415, "unsupported_media_type",
                        "POST /predict takes multipart/form-data (entries + image or text), as "
                        "Immich sends it");
    }
    check_multipart_fields(req, {"entries", "image", "text", "assetId"});
    const auto entries = multipart_fields(req, "entries");
    if (entries.size() != 1) invalid_format("exactly one 'entries' field is needed");
    json e = json::parse(entries[0], nullptr, false);
    if (!e.is_object() || e.empty()) invalid_format("'entries' must be a JSON object");
    std::string type, model;
    for (const auto& [task, types] : e.items()) {
      if (task != "clip") {
        throw StatusError(422, "unsupported_task",
                          "task '" + task +
                              "' is not served by clipserve (it serves clip.visual and "
                              "clip.textual: smart search)");
      }
      if (!types.is_object() || types.size() != 1) {
        invalid_format("'clip' must hold one of 'visual' or 'textual'");
      }
      type = types.begin().key();
      const json& entry = types.begin().value();
      if (type != "visual" && type != "textual") {
        throw StatusError(422, "unsupported_task",
                          "clip." + type + " is not served (clip.visual and clip.textual are)");
      }
      if (!entry.is_object() || !entry.contains("modelName") || !entry["modelName"].is_string()) {
        invalid_format("clip." + type + " needs a string 'modelName'");
      }
      model = entry["modelName"].get<std::string>();
    }
    if (!models.models->find(model)) {
      CS_THROW(kNotFound, models.models->not_served(model),
               " (Immich's ARCH__TAG spelling of the names works too)");
    }
    const auto lease = models.resolve(model);
    Engine& engine = *lease;
    if (!multipart_fields(req, "assetId").empty()) {
      CS_THROW(kInvalidArgument, "assetId inputs are not supported; send the image");
    }
    json out;
    if (type == "visual") {
      auto it = req.files.find("image");
      CS_CHECK_ARG(it != req.files.end() && !it->second.content.empty(),
                   "clip.visual needs an 'image' part");
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(it->second.content.data()),
                                     it->second.content.size());
      // Immich reads the size Pillow reports on open (no EXIF rotation), from the header.
      int w = 0, h = 0;
      if (image::sniff_format(bytes) == image::Format::kJpeg) {
        const auto info = image::probe_jpeg(bytes, "image");
        w = info.width;
        h = info.height;
      }
      Embeddings emb = engine.embed_images(
          {ImageInput::encoded(std::vector<uint8_t>(bytes.begin(), bytes.end()), "image")});
      if (w == 0) {
        const auto img = image::decode_image(bytes, image::DecodeOptions{}, "image");
        w = img.width;
        h = img.height;
      }
      out = {{"clip", embedding_string(emb)}, {"imageHeight", h}, {"imageWidth", w}};
      set_server_timing(res, emb.timings);
    } else {
      const auto text = multipart_fields(req, "text");
      CS_CHECK_ARG(text.size() == 1, "clip.textual needs one 'text' field");
      Embeddings emb = engine.embed_texts({text[0]});
      out = {{"clip", embedding_string(emb)}};
      set_server_timing(res, emb.timings);
    }
    res.set_content(dump(out), "application/json");
  });
}

}  // namespace clipserve::server
