// POST /detect (routes_detect.h): request parsing (JSON with base64 images, a raw image body
// with query parameters, or a multipart form), the Detector call, the JSON answer, metrics.
#include "server/routes_detect.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "engine/metrics.h"
#include "server/codec.h"
#include "server/http_util.h"

namespace clipserve::server {

namespace {

using json = nlohmann::ordered_json;  // the answer keeps its field order
using in_json = nlohmann::json;       // what parse_json_body gives

struct DetectRequest {
  std::vector<uint8_t> image;
  std::vector<std::string> queries;
  std::vector<uint8_t> example;
  std::optional<std::array<float, 4>> example_box;
  DetectParams params;
  bool threshold_given = false, nms_given = false;
};

float to_float(const std::string& s, const char* what) {
  try {
    size_t used = 0;
    const float v = std::stof(s, &used);
    if (used == s.size()) return v;
  } catch (const std::logic_error&) {
  }
  CS_THROW(kInvalidArgument, "'", what, "' must be a number, got '", s, "'");
}

std::array<float, 4> box_of(const in_json& j) {
  CS_CHECK_ARG(j.is_array() && j.size() == 4, "'example_box' must be [x0, y0, x1, y1]");
  std::array<float, 4> b{};
  for (int i = 0; i < 4; ++i) {
    CS_CHECK_ARG(j[i].is_number(), "'example_box' must hold numbers");
    b[i] = j[i].get<float>();
  }
  return b;
}

// Options as strings (query parameters, multipart fields) or JSON values. An unknown name is
// a 400 naming it (a misspelt option must not be silently ignored).
void apply_option(DetectRequest& r, const std::string& key, const std::string& v) {
  if (key == "threshold") {
    r.params.threshold = to_float(v, "threshold");
    r.threshold_given = true;
  } else if (key == "nms") {
    r.params.nms_iou = to_float(v, "nms");
    r.nms_given = true;
  } else if (key == "top_k") {
    r.params.top_k = int_param(v, "top_k", 0);
  } else if (key == "clip_boxes") {
    r.params.clip_boxes = bool_param(v, "clip_boxes");
  } else if (key == "sort") {
    r.params.sort_by_score = bool_param(v, "sort");
  } else if (key == "truncate") {
    r.params.truncate_queries = bool_param(v, "truncate");
  } else if (key == "queries") {
    for (auto& q : list_param(v, "queries")) r.queries.push_back(std::move(q));
  } else if (key == "example_box") {
    const auto parts = split_commas(v);
    CS_CHECK_ARG(parts.size() == 4, "'example_box' must be x0,y0,x1,y1");
    r.example_box = std::array<float, 4>{};
    for (int i = 0; i < 4; ++i) (*r.example_box)[i] = to_float(parts[i], "example_box");
  } else if (key != "timings") {
    CS_THROW(kInvalidArgument, "unknown parameter '", key,
             "' (known: threshold, nms, top_k, clip_boxes, sort, truncate, queries, example_box)");
  }
}

std::vector<uint8_t> image_of(const in_json& v, const char* what) {
  CS_CHECK_ARG(v.is_string(), "'", what, "' must be a base64 string");
  return base64_decode(v.get<std::string>(), what);
}

DetectRequest parse(const httplib::Request& req) {
  DetectRequest r;
  for (const auto& [k, v] : req.params) apply_option(r, k, v);
  const std::string type = req.get_header_value("Content-Type");
  if (req.is_multipart_form_data()) {
    for (const auto& [field, part] : req.files) {
      if (field == "image" || (field != "example" && !part.filename.empty() && r.image.empty())) {
        r.image.assign(part.content.begin(), part.content.end());
      } else if (field == "example") {
        r.example.assign(part.content.begin(), part.content.end());
      } else if (field == "query") {
        r.queries.push_back(part.content);  // one query per field: commas allowed
      } else {
        apply_option(r, field, part.content);
      }
    }
  } else if (type.rfind("image/", 0) == 0 || type == "application/octet-stream") {
    r.image.assign(req.body.begin(), req.body.end());
  } else {
    const in_json body = parse_json_body(
        req, ", an image (image/* or application/octet-stream) or multipart/form-data");
    check_fields(body, {"image", "queries", "example", "threshold", "nms", "top_k", "clip_boxes",
                        "sort", "truncate", "timings"});
    CS_CHECK_ARG(body.contains("image"), "missing 'image' (base64)");
    r.image = image_of(body["image"], "image");
    if (body.contains("queries")) {
      const in_json& q = body["queries"];
      CS_CHECK_ARG(q.is_array() || q.is_string(), "'queries' must be an array of strings");
      if (q.is_string()) {
        r.queries.push_back(q.get<std::string>());
      } else {
        for (size_t i = 0; i < q.size(); ++i) {
          CS_CHECK_ARG(q[i].is_string(), "queries[", i, "] must be a string");
          r.queries.push_back(q[i].get<std::string>());
        }
      }
    }
    if (body.contains("example")) {
      const in_json& e = body["example"];
      if (e.is_object()) {
        CS_CHECK_ARG(e.contains("image"), "'example' needs an 'image' (base64)");
        r.example = image_of(e["image"], "example.image");
        if (e.contains("box") && !e["box"].is_null()) r.example_box = box_of(e["box"]);
      } else {
        r.example = image_of(e, "example");
      }
    }
    for (const char* k : {"threshold", "nms", "top_k"}) {
      if (body.contains(k) && !body[k].is_null()) {
        CS_CHECK_ARG(body[k].is_number(), "'", k, "' must be a number");
        // Integers as integers ("5", not "5.000000": top_k is parsed as one); other numbers
        // with every digit they carry.
        apply_option(
            r, k,
            body[k].is_number_integer() ? std::to_string(body[k].get<int64_t>()) : body[k].dump());
      }
    }
    for (const char* k : {"clip_boxes", "sort", "truncate"}) {
      if (body.contains(k) && !body[k].is_null()) {
        CS_CHECK_ARG(body[k].is_boolean(), "'", k, "' must be true or false");
        apply_option(r, k, body[k].get<bool>() ? "true" : "false");
      }
    }
  }
  CS_CHECK_ARG(!r.image.empty(),
               "no image: send JSON {\"image\": <base64>}, an image body "
               "(Content-Type image/*) or a multipart form with an 'image' file");
  CS_CHECK_ARG(r.queries.empty() != r.example.empty(),
               "give either 'queries' (texts) or an 'example' image, not both or neither");
  if (!r.example.empty()) {
    // transformers 4.30's image-guided defaults.
    if (!r.threshold_given) r.params.threshold = 0.6f;
    if (!r.nms_given) r.params.nms_iou = 0.3f;
  }
  return r;
}

std::string answer(const Detector& det, const DetectionResult& d) {
  json dets = json::array();
  for (const auto& o : d.detections) {
    dets.push_back({{"label", o.label},
                    {"label_index", o.label_index},
                    {"score", o.score},
                    {"box", {o.box[0], o.box[1], o.box[2], o.box[3]}}});
  }
  const auto& t = d.timings;
  json body = {{"model", det.model_id()},
               {"image_size", {d.image_width, d.image_height}},
               {"detections", dets},
               {"image_cached", d.image_cached}};
  if (!d.truncated_queries.empty()) body["truncated_queries"] = d.truncated_queries;
  if (d.example_box_index >= 0) body["example_box_index"] = d.example_box_index;
  body["timings"] = {{"preprocess_ms", t.preprocess_ms}, {"queue_ms", t.queue_ms},
                     {"encode_ms", t.encode_ms},         {"postprocess_ms", t.postprocess_ms},
                     {"total_ms", t.total_ms},           {"batch", t.max_batch}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void install_detect_routes(httplib::Server& http, Detector& detector, metrics::Registry& metrics,
                           const std::atomic<bool>& draining) {
  auto* reg = &metrics;
  http.Post("/detect", [&detector, reg, &draining](const httplib::Request& req,
                                                   httplib::Response& res) {
    if (draining) CS_THROW(kUnavailable, "the server is shutting down");
    if (!detector.ready()) CS_THROW(kUnavailable, "the detection model is warming up");
    const DetectRequest r = parse(req);
    const DetectionResult d =
        r.example.empty()
            ? detector.detect(r.image, r.queries, r.params, "image")
            : detector.detect_by_example(r.image, r.example, r.example_box, r.params, "image");
    const auto& t = d.timings;
    for (const auto& [stage, ms] : {std::pair<const char*, double>{"preprocess", t.preprocess_ms},
                                    {"queue", t.queue_ms},
                                    {"encode", t.encode_ms},
                                    {"postprocess", t.postprocess_ms},
                                    {"total", t.total_ms}}) {
      reg->histogram("clipserve_detect_stage_seconds", "POST /detect time per stage",
                     metrics::latency_buckets(), {{"stage", stage}})
          .observe(ms / 1000.0);
    }
    reg->counter("clipserve_detect_image_cache_total", "POST /detect image feature cache lookups",
                 {{"result", d.image_cached ? "hit" : "miss"}})
        .inc();
    res.set_content(answer(detector, d), "application/json");
  });
}

}  // namespace clipserve::server
