// clipserve._clipserve.Detector: OWL-ViT detection (clipserve::Detector) for the Python package;
// images arrive as encoded bytes (clipserve/detect.py encodes PIL / numpy inputs losslessly).
#include "clipserve/detect.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "convert.h"

namespace clipserve::python {
namespace {

// Detections as (label, label_index, score, (x0, y0, x1, y1)) tuples plus the rest of the
// result: image size, cache flags, timings and the raw N x Q logits / N x 4 boxes as arrays.
py::dict result_dict(DetectionResult&& r) {
  py::list dets;
  for (const DetectedObject& d : r.detections) {
    dets.append(py::make_tuple(d.label, d.label_index, d.score,
                               py::make_tuple(d.box[0], d.box[1], d.box[2], d.box[3])));
  }
  py::dict out;
  out["detections"] = dets;
  out["image_size"] = py::make_tuple(r.image_width, r.image_height);
  out["image_cached"] = r.image_cached;
  out["queries_encoded"] = r.queries_encoded;
  out["truncated_queries"] = r.truncated_queries;
  out["example_box_index"] = r.example_box_index;
  out["timings"] = timings_dict(r.timings);
  out["logits"] = to_array(std::move(r.logits), r.boxes, r.queries);
  out["pred_boxes"] = to_array(std::move(r.pred_boxes), r.boxes, 4);
  return out;
}

DetectParams params(float threshold, float nms, int top_k, bool sort, bool clip_boxes,
                    bool truncate) {
  DetectParams p;
  p.threshold = threshold;
  p.nms_iou = nms;
  p.top_k = top_k;
  p.sort_by_score = sort;
  p.clip_boxes = clip_boxes;
  p.truncate_queries = truncate;
  return p;
}

// Like PyEngine: calls hold a shared_ptr taken under the GIL, close() waits for them.
class PyDetector {
 public:
  PyDetector(const std::string& model, const std::string& backend, const std::string& precision,
             int threads, int max_batch, int max_wait_us, int image_cache, int query_cache,
             bool warmup, const std::string& model_id) {
    CS_CHECK_ARG(threads >= 0, "threads must be >= 0, got ", threads);
    CS_CHECK_ARG(max_wait_us >= 0, "max_wait_us must be >= 0, got ", max_wait_us);
    CS_CHECK_ARG(image_cache >= 0 && query_cache >= 0, "cache sizes must be >= 0");
    DetectorOptions o;
    o.backend = backend;
    o.precision = precision;
    o.threads = threads;
    o.max_batch = max_batch;
    o.max_wait_us = max_wait_us;
    o.image_cache_entries = static_cast<size_t>(image_cache);
    o.query_cache_entries = static_cast<size_t>(query_cache);
    o.warmup = warmup;
    o.model_id = model_id;
    py::gil_scoped_release nogil;
    det_ = std::shared_ptr<Detector>(Detector::load(model, o));
  }

  py::dict detect(py::handle image, const py::sequence& queries, float threshold, float nms,
                  int top_k, bool sort, bool clip_boxes, bool truncate, const std::string& name) {
    Call call(*this);
    const ContiguousBuffer img(image, name);
    const std::vector<std::string> q = str_list(queries, "queries");
    const DetectParams p = params(threshold, nms, top_k, sort, clip_boxes, truncate);
    DetectionResult r;
    {
      py::gil_scoped_release nogil;
      r = call.det->detect(img.bytes(), q, p, name);
    }
    return result_dict(std::move(r));
  }

  py::dict detect_by_example(py::handle image, py::handle example,
                             std::optional<std::array<float, 4>> box, float threshold, float nms,
                             int top_k, bool sort, bool clip_boxes, bool alpha,
                             const std::string& name) {
    Call call(*this);
    const ContiguousBuffer img(image, name), ex(example, name + " (example)");
    DetectParams p = params(threshold, nms, top_k, sort, clip_boxes, false);
    p.image_guided_alpha = alpha;
    DetectionResult r;
    {
      py::gil_scoped_release nogil;
      r = call.det->detect_by_example(img.bytes(), ex.bytes(), box, p, name);
    }
    return result_dict(std::move(r));
  }

  py::dict info() {
    auto d = get();
    const ModelConfig& c = d->config();
    py::dict out;
    out["model_id"] = d->model_id();
    out["image_size"] = c.vision.image_size;
    out["patch_size"] = c.vision.patch_size;
    out["boxes"] = c.vision.grid() * c.vision.grid();
    out["context_length"] = c.text.context_length;
    out["backend"] = d->backend_name();
    out["precision"] = d->precision();
    return out;
  }

  py::dict counters() {
    const DetectorCounters c = get()->counters();
    py::dict d;
    d["images_encoded"] = c.images_encoded;
    d["image_batches"] = c.image_batches;
    d["image_cache_hits"] = c.image_cache_hits;
    d["image_cache_misses"] = c.image_cache_misses;
    d["query_cache_hits"] = c.query_cache_hits;
    d["query_cache_misses"] = c.query_cache_misses;
    return d;
  }

  void close() {
    std::shared_ptr<Detector> d = std::move(det_);
    py::gil_scoped_release nogil;
    while (inflight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    d.reset();
  }
  bool closed() const { return !det_; }

 private:
  std::shared_ptr<Detector> get() const {
    if (!det_) CS_THROW(kUnavailable, "the detector was closed");
    return det_;
  }
  struct Call {
    explicit Call(PyDetector& p) : p_(p), det(p.get()) { ++p_.inflight_; }
    ~Call() { --p_.inflight_; }
    PyDetector& p_;
    std::shared_ptr<Detector> det;
  };

  std::shared_ptr<Detector> det_;
  std::atomic<int> inflight_{0};
};

}  // namespace

void bind_detector(py::module_& m) {
  py::class_<PyDetector>(m, "Detector")
      .def(py::init<const std::string&, const std::string&, const std::string&, int, int, int, int,
                    int, bool, const std::string&>(),
           py::arg("model"), py::arg("backend"), py::arg("precision"), py::arg("threads"),
           py::arg("max_batch"), py::arg("max_wait_us"), py::arg("image_cache"),
           py::arg("query_cache"), py::arg("warmup"), py::arg("model_id"))
      .def("detect", &PyDetector::detect, py::arg("image"), py::arg("queries"),
           py::arg("threshold"), py::arg("nms"), py::arg("top_k"), py::arg("sort"),
           py::arg("clip_boxes"), py::arg("truncate"), py::arg("name"))
      .def("detect_by_example", &PyDetector::detect_by_example, py::arg("image"),
           py::arg("example"), py::arg("box"), py::arg("threshold"), py::arg("nms"),
           py::arg("top_k"), py::arg("sort"), py::arg("clip_boxes"), py::arg("alpha"),
           py::arg("name"))
      .def("info", &PyDetector::info)
      .def("counters", &PyDetector::counters)
      .def("close", &PyDetector::close)
      .def_property_readonly("closed", &PyDetector::closed);
}

}  // namespace clipserve::python
