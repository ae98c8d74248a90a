// POST /classify: zero-shot classification of one or many images, per-image results (a bad
// image is reported by name, the others are classified).
#include <future>
#include <optional>

#include "core/check.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

bool request_level(const Error& e) {
  return e.code() == ErrorCode::kOverloaded || e.code() == ErrorCode::kUnavailable ||
         e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kInternal ||
         e.code() == ErrorCode::kIo;
}

json labels_json(const std::vector<LabelScore>& scores) {
  json labels = json::array();
  for (const auto& s : scores) {
    labels.push_back({{"label", s.label}, {"prob", s.prob}, {"cosine", s.cosine}});
  }
  return labels;
}

}  // namespace

void install_classify_routes(httplib::Server& http, ModelAccess models,
                             const RequestBounds& bounds) {
  http.Post("/classify", [models, bounds](const httplib::Request& req, httplib::Response& res) {
    models.require_serving();
    std::string model;
    std::vector<ImageInput> images;
    LabelQuery q;
    json body;
    bool have_json = false;
    if (!req.is_multipart_form_data() && !is_raw_image(req)) {
      body = parse_json_body(req, kEmbedBodies);  // first: form bodies would be parameters
      have_json = true;
    }
    // Query parameters (raw and multipart bodies); labels=a,b or labels=["a,b","c"].
    auto from_params = [&]() {
      check_params(req, {"labelset", "labels", "label", "template", "templates", "top_k", "timings",
                         "model"});
      if (req.has_param("model")) model = req.get_param_value("model");
      if (req.has_param("labelset")) q.label_set = req.get_param_value("labelset");
      for (size_t i = 0; i < req.get_param_value_count("labels"); ++i) {
        for (auto& l : list_param(req.get_param_value("labels", i), "labels")) {
          q.labels.push_back(std::move(l));
        }
      }
      for (size_t i = 0; i < req.get_param_value_count("label"); ++i) {
        q.labels.push_back(req.get_param_value("label", i));
      }
      for (size_t i = 0; i < req.get_param_value_count("template"); ++i) {
        q.templates.push_back(req.get_param_value("template", i));
      }
      if (req.has_param("templates")) {
        const std::string t = req.get_param_value("templates");
        q.templates = t.find('[') == 0 ? list_param(t, "templates") : templates_from(t);
      }
      if (req.has_param("top_k")) q.top_k = int_param(req.get_param_value("top_k"), "top_k", 0);
      if (req.has_param("timings")) bool_param(req.get_param_value("timings"), "timings");
    };
    if (req.is_multipart_form_data()) {
      check_multipart_fields(
          req, {"labels", "label", "template", "templates", "labelset", "top_k", "model"});
      for (auto& m : multipart_fields(req, "model")) model = std::move(m);
      images = multipart_images(req);
      from_params();
      for (const auto& l : multipart_fields(req, "labels")) {
        for (auto& s : list_param(l, "labels")) q.labels.push_back(std::move(s));
      }
      for (auto& l : multipart_fields(req, "label")) q.labels.push_back(std::move(l));
      for (auto& t : multipart_fields(req, "template")) q.templates.push_back(std::move(t));
      for (auto& t : multipart_fields(req, "templates")) {
        q.templates = t.find('[') == 0 ? list_param(t, "templates") : templates_from(t);
      }
      for (auto& s : multipart_fields(req, "labelset")) q.label_set = s;
      for (auto& s : multipart_fields(req, "top_k")) q.top_k = int_param(s, "top_k", 0);
    } else if (is_raw_image(req)) {
      CS_CHECK_ARG(!req.body.empty(), "empty image body");
      images.push_back(
          ImageInput::encoded(std::vector<uint8_t>(req.body.begin(), req.body.end()), "body"));
      from_params();
    } else {
      check_params(req, {"timings"});
      check_fields(body, {"images", "image", "labelset", "labels", "templates", "top_k", "timings",
                          "model"});
      model = requested_model(body);
      if (body.contains("images")) {
        CS_CHECK_ARG(body["images"].is_array(), "'images' must be an array");
        check_items(body["images"].size(), bounds);
        for (size_t i = 0; i < body["images"].size(); ++i) {
          images.push_back(image_from_json(body["images"][i], index_name("images", i)));
        }
      }
      if (body.contains("image")) images.push_back(image_from_json(body["image"], "image"));
      if (body.contains("labelset")) {
        CS_CHECK_ARG(body["labelset"].is_string(), "'labelset' must be a string");
        q.label_set = body["labelset"].get<std::string>();
      }
      if (body.contains("labels")) q.labels = string_list(body["labels"], "labels");
      if (body.contains("templates")) q.templates = templates_from(body["templates"]);
      if (body.contains("top_k")) {
        CS_CHECK_ARG(body["top_k"].is_number_integer(), "'top_k' must be an integer");
        q.top_k = body["top_k"].get<int>();
      }
      CS_CHECK_ARG(!body.contains("timings") || body["timings"].is_boolean(),
                   "'timings' must be true or false");
    }
    CS_CHECK_ARG(!images.empty(), "no images in the request");
    check_items(images.size(), bounds);
    CS_CHECK_ARG(!q.label_set.empty() || !q.labels.empty(),
                 "give 'labels' (with optional 'templates') or a registered 'labelset'");
    CS_CHECK_ARG(q.top_k >= 0, "'top_k' must be >= 0");
    // Bounded before any prompt is built: labels x templates is what a request expands to.
    if (q.label_set.empty()) check_prompts(q.labels, q.templates, bounds);
    const auto lease = models.resolve(model);
    Engine& engine = *lease;

    std::vector<std::string> names;
    for (const auto& im : images) names.push_back(im.name);
    std::vector<ImageInput> copies;
    if (images.size() > 1) copies = images;
    std::vector<std::optional<std::vector<LabelScore>>> per(names.size());
    std::vector<json> errors(names.size());
    Classification c;
    try {
      c = engine.classify(std::move(images), q);
      for (size_t i = 0; i < per.size(); ++i) per[i] = std::move(c.images[i]);
    } catch (const Error& e) {
      if (request_level(e) || copies.empty()) throw;
      // One image each: the first alone (it computes and caches the label features), then
      // the rest together.
      std::vector<std::future<Classification>> fs(copies.size());
      for (size_t i = 0; i < copies.size(); ++i) {
        try {
          fs[i] = engine.submit_classify({std::move(copies[i])}, q);
          if (i == 0) fs[0].wait();
        } catch (const Error& ei) {
          if (request_level(ei)) throw;
          errors[i] = {{"message", ei.what()},
                       {"type", error_code_name(ei.code())},
                       {"code", status_for(ei.code())}};
        }
      }
      c = Classification{};
      for (size_t i = 0; i < fs.size(); ++i) {
        if (!fs[i].valid()) continue;
        try {
          Classification one = fs[i].get();
          per[i] = std::move(one.images[0]);
          c.text_encoded += one.text_encoded;
          c.timings = merge(c.timings, one.timings);
        } catch (const Error& ei) {
          if (request_level(ei)) throw;
          errors[i] = {{"message", ei.what()},
                       {"type", error_code_name(ei.code())},
                       {"code", status_for(ei.code())}};
        }
      }
      size_t ok = 0;
      for (const auto& p : per) ok += p.has_value();
      if (ok == 0) {
        const json& first = errors[0];
        throw StatusError(first["code"].get<int>(), type_for_status(first["code"].get<int>()),
                          first["message"].get<std::string>());
      }
    }
    json results = json::array();
    for (size_t i = 0; i < per.size(); ++i) {
      json r = {{"index", i}, {"name", names[i]}};
      if (per[i]) {
        r["labels"] = labels_json(*per[i]);
      } else {
        r["error"] = errors[i];
      }
      results.push_back(std::move(r));
    }
    json out = {
        {"model", engine.model_id()}, {"results", results}, {"text_encoded", c.text_encoded}};
    if (!q.label_set.empty()) out["labelset"] = q.label_set;
    respond(req, res, dump(out), c.timings, want_timings(req, have_json ? &body : nullptr));
  });
}

}  // namespace clipserve::server
