// The inference routes: POST /v1/embeddings (OpenAI compatible, all-or-nothing), POST /embed
// and POST /classify (per-item results: good inputs answered, bad ones reported by name).
#include <future>
#include <optional>

#include "core/check.h"
#include "server/codec.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

// A failed input of a per-item request.
struct ItemError {
  size_t index;  // position among the request's inputs of its kind
  std::string input;
  int status;
  std::string type;
  std::string message;
};

ItemError item_error(size_t index, const std::string& input, const Error& e) {
  return {index, input, status_for(e.code()), error_code_name(e.code()), e.what()};
}

// Errors that belong to the request (retry later, wrong label set), not to one input.
bool request_level(const Error& e) {
  return e.code() == ErrorCode::kOverloaded || e.code() == ErrorCode::kUnavailable ||
         e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kInternal ||
         e.code() == ErrorCode::kIo;
}

// "texts[k]: ..." from the engine: k, or npos.
size_t failed_text(const Error& e) {
  size_t k = 0;
  const std::string msg = e.what();
  if (msg.rfind("texts[", 0) == 0 && std::sscanf(msg.c_str(), "texts[%zu]", &k) == 1) return k;
  return std::string::npos;
}

// Embeds the texts; a text the engine refuses (invalid UTF-8) becomes an ItemError and the
// others are submitted again without it. rows[i]: the row of input i in the result, or -1.
Embeddings embed_texts_each(Engine& engine, const std::vector<std::string>& texts,
                            const std::vector<std::string>& names, bool normalize,
                            std::vector<int>& rows, std::vector<ItemError>& errors) {
  std::vector<size_t> alive(texts.size());
  for (size_t i = 0; i < alive.size(); ++i) alive[i] = i;
  rows.assign(texts.size(), -1);
  std::future<Embeddings> f;
  while (!alive.empty()) {
    std::vector<std::string> sub;
    for (size_t i : alive) sub.push_back(texts[i]);
    try {
      f = engine.submit_texts(std::move(sub), normalize);
      break;
    } catch (const Error& e) {
      const size_t k = failed_text(e);
      if (request_level(e) || k >= alive.size()) throw;
      const std::string msg = e.what();
      errors.push_back({alive[k], names[alive[k]], status_for(e.code()), error_code_name(e.code()),
                        names[alive[k]] + msg.substr(msg.find(']') + 1)});
      alive.erase(alive.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }
  if (!f.valid()) return {};
  Embeddings e = f.get();
  for (size_t r = 0; r < alive.size(); ++r) rows[alive[r]] = static_cast<int>(r);
  return e;
}

// Embeds the images in one engine request; when an input fails, each image again on its own
// so that the good ones are answered. rows[i] as above; per-image results come back merged.
Embeddings embed_images_each(Engine& engine, std::vector<ImageInput> images, bool normalize,
                             std::vector<int>& rows, std::vector<ItemError>& errors) {
  rows.assign(images.size(), -1);
  std::vector<ImageInput> copies;
  if (images.size() > 1) copies = images;
  try {
    Embeddings e = engine.submit_images(std::move(images), normalize).get();
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int>(i);
    return e;
  } catch (const Error& e) {
    if (request_level(e) || copies.empty()) throw;
  }
  std::vector<std::future<Embeddings>> fs(copies.size());
  std::vector<std::string> names;
  for (size_t i = 0; i < copies.size(); ++i) {
    names.push_back(copies[i].name);
    try {
      fs[i] = engine.submit_images({std::move(copies[i])}, normalize);
    } catch (const Error& e) {
      errors.push_back(item_error(i, names[i], e));
    }
  }
  Embeddings out;
  for (size_t i = 0; i < fs.size(); ++i) {
    if (!fs[i].valid()) continue;
    try {
      Embeddings one = fs[i].get();
      rows[i] = out.n++;
      out.dim = one.dim;
      out.data.insert(out.data.end(), one.data.begin(), one.data.end());
      out.timings = out.n == 1 ? one.timings : merge(out.timings, one.timings);
    } catch (const Error& e) {
      errors.push_back(item_error(i, names[i], e));
    }
  }
  return out;
}

// The error body of a request whose every input failed: the first failure, as before.
[[noreturn]] void all_failed(const std::vector<ItemError>& errors) {
  const ItemError& e = errors.front();
  throw StatusError(e.status, type_for_status(e.status), e.message);
}

json errors_json(const std::vector<ItemError>& errors, const char* kind) {
  json a = json::array();
  for (const auto& e : errors) {
    a.push_back({{"kind", kind},
                 {"index", e.index},
                 {"input", e.input},
                 {"error", {{"message", e.message}, {"type", e.type}, {"code", e.status}}}});
  }
  return a;
}

std::string strict_message(const std::string& name, int context) {
  return name + ": longer than the model's context of " + std::to_string(context) +
         " tokens (strict mode refuses instead of truncating)";
}

}  // namespace

void install_embedding_routes(httplib::Server& http, ModelAccess models,
                              const RequestBounds& bounds) {
  // OpenAI-compatible embeddings (texts), plus images as {"image": <base64>} items. One bad
  // input fails the whole request, as OpenAI's API does.
  // Infinity's clients add "modality": "image" with data URIs (or URLs) as the inputs, and
  // call the same route at the root (/embeddings).
  auto openai = [models, bounds](const httplib::Request& req, httplib::Response& res) {
    models.require_serving();
    json body = parse_json_body(req);  // first: form bodies would show up as parameters
    check_params(req, {"timings"});
    check_fields(body, {"input", "model", "encoding_format", "dimensions", "user", "timings",
                        "strict", "modality"});
    std::string modality = "text";
    if (body.contains("modality") && !body["modality"].is_null()) {
      CS_CHECK_ARG(body["modality"].is_string(), "'modality' must be a string");
      modality = body["modality"].get<std::string>();
      CS_CHECK_ARG(modality == "text" || modality == "image",
                   "'modality' must be text or image, got '", modality, "' (audio is not served)");
    }
    CS_CHECK_ARG(body.contains("input"), "missing 'input'");
    const auto lease = models.resolve(requested_model(body));
    Engine& engine = *lease;
    std::string format = "float";
    if (body.contains("encoding_format") && !body["encoding_format"].is_null()) {
      CS_CHECK_ARG(body["encoding_format"].is_string(), "'encoding_format' must be a string");
      format = body["encoding_format"].get<std::string>();
      CS_CHECK_ARG(format == "float" || format == "base64", "encoding_format '", format,
                   "' is not supported (float or base64)");
    }
    if (body.contains("dimensions") && !body["dimensions"].is_null()) {
      CS_CHECK_ARG(body["dimensions"].is_number_integer() &&
                       body["dimensions"].get<int>() == engine.embed_dim(),
                   "'dimensions' must equal the model's embedding size ", engine.embed_dim());
    }
    CS_CHECK_ARG(!body.contains("strict") || body["strict"].is_boolean(),
                 "'strict' must be true or false");
    const bool strict = body.contains("strict") && body["strict"].get<bool>();
    const json& input = body["input"];
    std::vector<json> items;
    if (input.is_array()) {
      CS_CHECK_ARG(!input.empty(), "'input' is an empty array");
      CS_CHECK_ARG(!input[0].is_number(),
                   "token-id inputs are not supported (CLIP uses its own tokenizer); send text");
      items.assign(input.begin(), input.end());
    } else {
      items.push_back(input);
    }
    check_items(items.size(), bounds);
    std::vector<std::string> texts;
    std::vector<ImageInput> images;
    std::vector<std::pair<bool, int>> where;  // per input: (is_image, index within its kind)
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& it = items[i];
      const std::string name = index_name("input", i);
      if (it.is_string() && modality == "image") {
        where.push_back({true, static_cast<int>(images.size())});
        images.push_back(image_from_json(it, name));
      } else if (it.is_string() || (it.is_object() && it.contains("text"))) {
        const json& t = it.is_string() ? it : it["text"];
        CS_CHECK_ARG(t.is_string(), name, ".text must be a string");
        check_text(t.get_ref<const std::string&>(), name, bounds);
        where.push_back({false, static_cast<int>(texts.size())});
        texts.push_back(t.get<std::string>());
      } else if (it.is_object()) {
        where.push_back({true, static_cast<int>(images.size())});
        images.push_back(image_from_json(it, name));
      } else {
        CS_THROW(kInvalidArgument, name,
                 " must be a string, {\"text\": ...} or {\"image\": <base64>}",
                 it.is_array() ? " (token-id inputs are not supported)" : "");
      }
    }
    auto input_of_text = [&](size_t k) {
      for (size_t i = 0; i < where.size(); ++i) {
        if (!where[i].first && where[i].second == static_cast<int>(k)) return i;
      }
      return k;
    };
    std::future<Embeddings> ft, fi;
    if (!texts.empty()) {
      try {
        ft = engine.submit_texts(texts);
      } catch (const Error& e) {
        // The engine names "texts[k]"; the client knows the position in 'input'.
        std::string msg = e.what();
        const size_t k = failed_text(e);
        if (k != std::string::npos) {
          msg = index_name("input", input_of_text(k)) + msg.substr(msg.find(']') + 1);
        }
        throw Error(e.code(), msg);
      }
    }
    if (!images.empty()) fi = engine.submit_images(std::move(images));
    Embeddings et, ei;
    if (ft.valid()) et = ft.get();
    if (fi.valid()) ei = fi.get();
    for (size_t k = 0; strict && k < et.truncated.size(); ++k) {
      if (et.truncated[k]) {
        CS_THROW(kInvalidArgument, strict_message(index_name("input", input_of_text(k)),
                                                  engine.config().text.context_length));
      }
    }
    int tokens = 0;
    for (int c : et.token_counts) tokens += c;
    std::string out = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < where.size(); ++i) {
      const Embeddings& e = where[i].first ? ei : et;
      const float* row = e.row(where[i].second);
      if (i) out += ',';
      out += "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
      if (format == "base64") {
        out += '"' +
               base64_encode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(row),
                                                      e.dim * sizeof(float))) +
               '"';
      } else {
        append_float_array(out, row, e.dim);
      }
      if (!where[i].first && et.truncated[where[i].second]) out += ",\"truncated\":true";
      out += '}';
    }
    out += "],\"model\":" + quoted(engine.model_id()) +
           ",\"usage\":{\"prompt_tokens\":" + std::to_string(tokens) +
           ",\"total_tokens\":" + std::to_string(tokens) + "}}";
    respond(req, res, std::move(out), merge(et.timings, ei.timings), want_timings(req, &body));
  };
  http.Post("/v1/embeddings", openai);
  http.Post("/embeddings", openai);

  // Native embeddings: JSON {"texts": [...], "images": [<base64>...]}, a raw image body, or a
  // multipart form (files = images, "text" fields = texts). Per-item results.
  http.Post("/embed", [models, bounds](const httplib::Request& req, httplib::Response& res) {
    models.require_serving();
    const bool form = req.is_multipart_form_data(), raw = !form && is_raw_image(req);
    json body;
    bool have_json = false;
    if (!form && !raw) {  // first: form bodies would show up as parameters
      body = parse_json_body(req, kEmbedBodies);
      have_json = true;
    }
    check_params(req, {"timings", "normalize", "strict", "model"});
    std::string model = req.has_param("model") ? req.get_param_value("model") : "";
    std::vector<std::string> texts;
    std::vector<ImageInput> images;
    bool normalize =
        !req.has_param("normalize") || bool_param(req.get_param_value("normalize"), "normalize");
    bool strict = req.has_param("strict") && bool_param(req.get_param_value("strict"), "strict");
    if (req.has_param("timings")) bool_param(req.get_param_value("timings"), "timings");
    if (form) {
      check_multipart_fields(req, {"text", "texts", "model"});
      for (auto& m : multipart_fields(req, "model")) model = std::move(m);
      images = multipart_images(req);
      texts = multipart_fields(req, "text");
      for (auto& t : multipart_fields(req, "texts")) texts.push_back(std::move(t));
    } else if (raw) {
      CS_CHECK_ARG(!req.body.empty(), "empty image body");
      images.push_back(
          ImageInput::encoded(std::vector<uint8_t>(req.body.begin(), req.body.end()), "body"));
    } else {
      check_fields(body,
                   {"texts", "text", "images", "image", "normalize", "timings", "strict", "model"});
      if (body.contains("model")) model = requested_model(body);
      if (body.contains("texts")) texts = string_list(body["texts"], "texts");
      if (body.contains("text")) {
        for (auto& t : string_list(body["text"], "text")) texts.push_back(std::move(t));
      }
      if (body.contains("images")) {
        CS_CHECK_ARG(body["images"].is_array(), "'images' must be an array");
        check_items(body["images"].size(), bounds);
        for (size_t i = 0; i < body["images"].size(); ++i) {
          images.push_back(image_from_json(body["images"][i], index_name("images", i)));
        }
      }
      if (body.contains("image")) images.push_back(image_from_json(body["image"], "image"));
      for (const char* k : {"normalize", "timings", "strict"}) {
        CS_CHECK_ARG(!body.contains(k) || body[k].is_boolean(), "'", k, "' must be true or false");
      }
      if (body.contains("normalize")) normalize = body["normalize"].get<bool>();
      if (body.contains("strict")) strict = body["strict"].get<bool>();
    }
    CS_CHECK_ARG(!texts.empty() || !images.empty(), "no texts or images in the request");
    check_items(texts.size() + images.size(), bounds);
    const auto lease = models.resolve(model);
    Engine& engine = *lease;
    std::vector<std::string> text_names;
    for (size_t i = 0; i < texts.size(); ++i) {
      text_names.push_back(index_name("texts", i));
      check_text(texts[i], text_names.back(), bounds);
    }
    std::vector<ItemError> text_errors, image_errors;
    std::vector<int> text_rows, image_rows;
    // Images run on the preprocessing pool while the texts are tokenized here.
    const size_t n_images = images.size();
    std::future<Embeddings> fi;
    if (!images.empty()) {
      fi = std::async(std::launch::async, [&engine, normalize, &image_rows, &image_errors,
                                           imgs = std::move(images)]() mutable {
        return embed_images_each(engine, std::move(imgs), normalize, image_rows, image_errors);
      });
    }
    Embeddings et, ei;
    if (!texts.empty()) {
      et = embed_texts_each(engine, texts, text_names, normalize, text_rows, text_errors);
    }
    if (fi.valid()) ei = fi.get();
    const int context = engine.config().text.context_length;
    for (size_t i = 0; strict && i < text_rows.size(); ++i) {
      if (text_rows[i] >= 0 && et.truncated[text_rows[i]]) {
        text_errors.push_back(
            {i, text_names[i], 400, "invalid_argument", strict_message(text_names[i], context)});
        text_rows[i] = -1;
      }
    }
    const size_t failed = text_errors.size() + image_errors.size();
    if (failed == texts.size() + n_images) {
      all_failed(text_errors.empty() ? image_errors : text_errors);
    }
    std::string out = "{\"model\":" + quoted(engine.model_id()) +
                      ",\"dim\":" + std::to_string(engine.embed_dim());
    auto rows = [&out](const char* key, const Embeddings& e, const std::vector<int>& at) {
      out += std::string(",\"") + key + "\":[";
      for (size_t i = 0; i < at.size(); ++i) {
        if (i) out += ',';
        if (at[i] < 0) {
          out += "null";
        } else {
          append_float_array(out, e.row(at[i]), e.dim);
        }
      }
      out += ']';
    };
    if (!texts.empty()) {
      rows("text_embeddings", et, text_rows);
      out += ",\"text_truncated\":[";
      for (size_t i = 0; i < text_rows.size(); ++i) {
        out += i ? "," : "";
        out += text_rows[i] >= 0 && et.truncated[text_rows[i]] ? "true" : "false";
      }
      out += ']';
    }
    if (n_images) rows("image_embeddings", ei, image_rows);
    if (failed) {
      json errs = errors_json(text_errors, "text");
      for (auto& e : errors_json(image_errors, "image")) errs.push_back(std::move(e));
      out += ",\"errors\":" + dump(errs);
    }
    out += '}';
    respond(req, res, std::move(out), merge(et.timings, ei.timings),
            want_timings(req, have_json ? &body : nullptr));
  });
}

}  // namespace clipserve::server
