// KServe v2 / Triton "predict protocol v2" over HTTP/JSON: server and model health, metadata,
// and inference with a BYTES input (texts, or base64 images) giving an FP32 embedding output.
// Shapes follow the KServe v2 protocol document (kserve/docs/predict-api/v2/required_api.md).
#include "core/check.h"
#include "server/codec.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

// The model of a /v2/models/{name}[/versions/{v}] path, or 404.
ModelSet::Info check_model(const ModelSet& models, const httplib::Request& req) {
  const std::string name = req.matches[1];
  const std::string version = req.matches.size() > 2 ? std::string(req.matches[2]) : "";
  auto info = models.find(name);
  if (!info) throw Error(ErrorCode::kNotFound, models.not_served(name));
  if (!version.empty() && version != "1") {
    CS_THROW(kNotFound, "model '", name, "' has no version '", version, "' (only 1)");
  }
  return *info;
}

json metadata(const ModelSet::Info& info) {
  const int d = info.embed_dim;
  return {{"name", info.id},
          {"versions", json::array({"1"})},
          {"platform", "clipserve"},
          {"inputs",
           json::array({{{"name", "TEXT"}, {"datatype", "BYTES"}, {"shape", json::array({-1})}},
                        {{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", json::array({-1})}}})},
          {"outputs",
           json::array(
               {{{"name", "EMBEDDING"}, {"datatype", "FP32"}, {"shape", json::array({-1, d})}}})}};
}

}  // namespace

void install_kserve_routes(httplib::Server& http, ModelAccess models, const RequestBounds& bounds) {
  http.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        dump(
            {{"name", "clipserve"}, {"version", CLIPSERVE_VERSION}, {"extensions", json::array()}}),
        "application/json");
  });
  http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"live\":true}", "application/json");
  });
  http.Get("/v2/health/ready", [models](const httplib::Request&, httplib::Response& res) {
    const bool ready = models.models->ready() && !models.draining();
    res.status = ready ? 200 : 503;
    res.set_content(dump({{"ready", ready}}), "application/json");
  });
  auto model_ready = [models](const httplib::Request& req, httplib::Response& res) {
    const auto info = check_model(*models.models, req);
    const bool ready = info.ready && !models.draining();
    res.status = ready ? 200 : 503;
    res.set_content(dump({{"name", info.id}, {"ready", ready}}), "application/json");
  };
  http.Get(R"(/v2/models/([^/]+)/ready)", model_ready);
  http.Get(R"(/v2/models/([^/]+)/versions/([^/]+)/ready)", model_ready);
  auto model_meta = [models](const httplib::Request& req, httplib::Response& res) {
    res.set_content(dump(metadata(check_model(*models.models, req))), "application/json");
  };
  http.Get(R"(/v2/models/([^/]+))", model_meta);
  http.Get(R"(/v2/models/([^/]+)/versions/([^/]+))", model_meta);

  // {"inputs": [{"name": "TEXT"|"IMAGE", "datatype": "BYTES", "shape": [n], "data": [...]}]}:
  // texts as strings, images as base64 strings; one input per request (a tower at a time).
  auto infer = [models, bounds](const httplib::Request& req, httplib::Response& res) {
    models.require_serving();
    check_model(*models.models, req);
    json body = parse_json_body(req);
    check_fields(body, {"id", "inputs", "outputs", "parameters"});
    CS_CHECK_ARG(body.contains("inputs") && body["inputs"].is_array() && body["inputs"].size() == 1,
                 "'inputs' must hold exactly one tensor (TEXT or IMAGE)");
    const json& in = body["inputs"][0];
    CS_CHECK_ARG(in.is_object(), "inputs[0] must be an object");
    check_fields(in, {"name", "datatype", "shape", "data", "parameters"}, "inputs[0] field");
    CS_CHECK_ARG(in.contains("name") && in["name"].is_string(), "inputs[0].name must be a string");
    const std::string name = in["name"];
    CS_CHECK_ARG(name == "TEXT" || name == "IMAGE", "inputs[0].name must be TEXT or IMAGE, got '",
                 name, "'");
    CS_CHECK_ARG(in.value("datatype", "") == "BYTES", "inputs[0].datatype must be BYTES");
    CS_CHECK_ARG(in.contains("data") && in["data"].is_array(), "inputs[0].data must be an array");
    const json& data = in["data"];
    CS_CHECK_ARG(!data.empty(), "inputs[0].data is empty");
    if (in.contains("shape")) {
      CS_CHECK_ARG(in["shape"] == json::array({data.size()}), "inputs[0].shape must be [",
                   data.size(), "] (the number of data elements)");
    }
    check_items(data.size(), bounds);
    const auto lease = models.resolve(req.matches[1]);
    Engine& engine = *lease;
    Embeddings e;
    if (name == "TEXT") {
      std::vector<std::string> texts;
      for (size_t i = 0; i < data.size(); ++i) {
        CS_CHECK_ARG(data[i].is_string(), "inputs[0].data[", i, "] must be a string");
        check_text(data[i].get_ref<const std::string&>(), index_name("data", i), bounds);
        texts.push_back(data[i].get<std::string>());
      }
      e = engine.embed_texts(std::move(texts));
    } else {
      std::vector<ImageInput> images;
      for (size_t i = 0; i < data.size(); ++i) {
        images.push_back(image_from_json(data[i], "inputs[0].data[" + std::to_string(i) + "]"));
      }
      e = engine.embed_images(std::move(images));
    }
    std::string out = "{\"model_name\":" + quoted(engine.model_id()) + ",\"model_version\":\"1\"";
    if (body.contains("id") && body["id"].is_string()) out += ",\"id\":" + quoted(body["id"]);
    out += ",\"outputs\":[{\"name\":\"EMBEDDING\",\"datatype\":\"FP32\",\"shape\":[" +
           std::to_string(e.n) + "," + std::to_string(e.dim) + "],\"data\":";
    append_float_array(out, e.data.data(), e.data.size());
    out += "}]}";
    set_server_timing(res, e.timings);
    res.set_content(out, "application/json");
  };
  http.Post(R"(/v2/models/([^/]+)/infer)", infer);
  http.Post(R"(/v2/models/([^/]+)/versions/([^/]+)/infer)", infer);
}

}  // namespace clipserve::server
