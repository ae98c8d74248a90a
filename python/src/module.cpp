// clipserve._clipserve: the pybind11 extension behind the `clipserve` Python package. A thin
// layer over clipserve::Engine and the tokenizer: the GIL is released while images are read,
// decoded and encoded, and clipserve::Error becomes the matching clipserve.* exception.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "clipserve/engine.h"
#include "clipserve/tokenizer.h"
#include "convert.h"
#include "core/check.h"
#include "image_blob.h"

namespace py = pybind11;

namespace clipserve::python {
namespace {

// Exception classes of clipserve._errors, by ErrorCode (set at import, never freed: they
// must outlive every translation, including those at interpreter shutdown).
PyObject* g_errors[8] = {};
PyObject* g_base_error = nullptr;

PyObject* error_class(ErrorCode c) {
  PyObject* cls = g_errors[static_cast<int>(c)];
  return cls ? cls : g_base_error;
}

py::tuple as_tuple(py::handle h, size_t n, const char* what) {
  CS_CHECK_ARG(py::isinstance<py::tuple>(h) && py::len(h) == n, "internal: ", what,
               " is not a tuple of ", n);
  return py::reinterpret_borrow<py::tuple>(h);
}

// One image item from the Python layer: (kind, payload, name) with kind "path" (str),
// "bytes" (a buffer of encoded bytes), "pixels" ((mode, width, height, data buffer, palette
// buffer or None)) or "tensor" (a C-contiguous float32 buffer of 3 x S x S).
ImageInput image_item(const py::handle& item, size_t index) {
  const py::tuple t = as_tuple(item, 3, "an image item");
  const std::string kind = utf8(t[0], "kind");
  std::string name = t[2].is_none() ? "images[" + std::to_string(index) + "]" : utf8(t[2], "name");
  if (kind == "path") {
    auto blob = pack_path(utf8(t[1], name));
    return ImageInput::encoded(std::move(blob), std::move(name));
  }
  if (kind == "bytes") {
    const ContiguousBuffer b(t[1], name);
    return ImageInput::encoded(std::vector<uint8_t>(b.bytes().begin(), b.bytes().end()),
                               std::move(name));
  }
  if (kind == "pixels") {
    const py::tuple px = as_tuple(t[1], 5, "a pixels payload");
    RawPixels raw;
    raw.mode = utf8(px[0], name + " mode");
    raw.width = px[1].cast<int>();
    raw.height = px[2].cast<int>();
    const ContiguousBuffer data(px[3], name);
    raw.data = data.bytes();
    std::optional<ContiguousBuffer> pal;
    if (!px[4].is_none()) {
      pal.emplace(px[4], name + " palette");
      raw.palette = pal->bytes();
    }
    auto blob = pack_pixels(raw, name);
    return ImageInput::encoded(std::move(blob), std::move(name));
  }
  CS_CHECK_ARG(kind == "tensor", "internal: unknown image item kind '", kind, "'");
  const ContiguousBuffer b(t[1], name);
  CS_CHECK_ARG(b.format() == "f" && b.itemsize() == 4, name,
               ": a preprocessed tensor must be float32");
  const auto* p = reinterpret_cast<const float*>(b.bytes().data());
  return ImageInput::preprocessed(std::vector<float>(p, p + b.bytes().size() / 4), std::move(name));
}

std::vector<ImageInput> image_items(const py::sequence& items) {
  std::vector<ImageInput> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) out.push_back(image_item(items[i], i));
  return out;
}

// The Engine behind clipserve.Model. Calls copy the shared_ptr under the GIL before releasing
// it, so close() in one thread never destroys an engine another thread is using.
class PyEngine {
 public:
  PyEngine(const std::string& model, const std::string& backend, const std::string& precision,
           int threads, int max_batch, int max_wait_us, int max_queue, int preprocess_threads,
           bool warmup, const std::string& model_id, int label_cache) {
    EngineOptions eo;
    eo.encoder.backend = backend;
    eo.encoder.precision = precision;
    eo.encoder.threads = threads;
    eo.max_batch = max_batch;
    eo.max_wait_us = max_wait_us;
    eo.max_queue = max_queue;
    eo.preprocess_threads = preprocess_threads;
    eo.warmup = warmup;
    CS_CHECK_ARG(label_cache >= 0, "label_cache must be >= 0");
    eo.label_cache_entries = static_cast<size_t>(label_cache);
    eo.model_id = model_id;
    CS_CHECK_ARG(threads >= 0 && preprocess_threads >= 0, "threads must be >= 0");
    CS_CHECK_ARG(max_batch >= 1 && max_queue >= 1 && max_wait_us >= 0,
                 "max_batch and max_queue must be >= 1, max_wait_us >= 0");
    if (eo.model_id.empty()) {  // Engine::load's naming rule
      const auto p = std::filesystem::path(model).lexically_normal();
      eo.model_id =
          p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
    }
    backend_ = backend;
    precision_ = precision;
    threads_ = threads;
    py::gil_scoped_release nogil;
    auto encoder = Encoder::load(model, eo.encoder);
    auto fe = python_frontends(encoder->config());
    auto engine = Engine::create(std::move(encoder), std::move(fe), eo);
    engine->warm_up();
    engine_ = std::shared_ptr<Engine>(std::move(engine));
  }

  std::shared_ptr<Engine> get() const {
    if (!engine_) CS_THROW(kUnavailable, "the model was closed");
    return engine_;
  }

  // Counts a call that will release the GIL (taken and dropped with the GIL held).
  struct Call {
    explicit Call(PyEngine& p) : p_(p), engine(p.get()) { ++p_.inflight_; }
    ~Call() { --p_.inflight_; }
    PyEngine& p_;
    std::shared_ptr<Engine> engine;
  };

  // Refuses new calls, then waits (GIL released) until the calls in flight have returned to
  // Python: run at exit, so no thread is still inside the engine when the interpreter
  // finalizes (a daemon thread resuming then would be terminated mid-C++).
  void close() {
    std::shared_ptr<Engine> e = std::move(engine_);
    py::gil_scoped_release nogil;
    while (inflight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    e.reset();
  }
  bool closed() const { return !engine_; }

  py::tuple embed_images(const py::sequence& items, bool normalize) {
    Call call(*this);
    auto& e = call.engine;
    std::vector<ImageInput> in = image_items(items);
    Embeddings r;
    {
      py::gil_scoped_release nogil;
      r = e->embed_images(std::move(in), normalize);
    }
    return py::make_tuple(to_array(std::move(r.data), r.n, r.dim), timings_dict(r.timings));
  }

  py::tuple embed_texts(const py::sequence& texts, bool normalize) {
    Call call(*this);
    auto& e = call.engine;
    std::vector<std::string> in = str_list(texts, "texts");
    Embeddings r;
    {
      py::gil_scoped_release nogil;
      r = e->embed_texts(std::move(in), normalize);
    }
    return py::make_tuple(to_array(std::move(r.data), r.n, r.dim), timings_dict(r.timings),
                          r.token_counts);
  }

  py::tuple classify(const py::sequence& items, const std::string& label_set,
                     const py::sequence& labels, const py::sequence& templates, int top_k) {
    Call call(*this);
    auto& e = call.engine;
    LabelQuery q;
    q.label_set = label_set;
    q.labels = str_list(labels, "labels");
    q.templates = str_list(templates, "templates");
    q.top_k = top_k;
    CS_CHECK_ARG(top_k >= 0, "top_k must be >= 0, got ", top_k);
    std::vector<ImageInput> in = image_items(items);
    Classification c;
    {
      py::gil_scoped_release nogil;
      c = e->classify(std::move(in), q);
    }
    py::list results;
    for (const auto& scores : c.images) {
      py::list row;
      for (const auto& s : scores) row.append(py::make_tuple(s.label, s.prob, s.cosine));
      results.append(row);
    }
    return py::make_tuple(results, timings_dict(c.timings), c.text_encoded);
  }

  bool put_label_set(const std::string& name, const py::sequence& labels,
                     const py::sequence& templates) {
    Call call(*this);
    auto& e = call.engine;
    auto l = str_list(labels, "labels");
    auto t = str_list(templates, "templates");
    py::gil_scoped_release nogil;
    return e->put_label_set(name, std::move(l), std::move(t));
  }
  py::object get_label_set(const std::string& name) {
    auto info = get()->get_label_set(name);
    if (!info) return py::none();
    return py::make_tuple(info->name, info->labels, info->templates);
  }
  bool delete_label_set(const std::string& name) { return get()->delete_label_set(name); }
  std::vector<std::string> label_set_names() { return get()->label_set_names(); }

  py::array_t<float> preprocess(const py::handle& item) {
    Call call(*this);
    auto& e = call.engine;
    ImageInput in = image_item(item, 0);
    const int S = e->config().vision.image_size;
    py::array_t<float> out({3, S, S});
    if (!in.pixels.empty()) {
      CS_CHECK_ARG(in.pixels.size() == static_cast<size_t>(3) * S * S, in.name,
                   ": preprocessed tensor has ", in.pixels.size(), " floats, the model needs 3 x ",
                   S, " x ", S);
      std::memcpy(out.mutable_data(), in.pixels.data(), in.pixels.size() * sizeof(float));
      return out;
    }
    CS_CHECK_ARG(!in.bytes.empty(), in.name, ": empty image");
    PreprocessOptions opt = PreprocessOptions::from(e->config().preprocess);
    CS_CHECK_ARG(opt.size == S, "the model's preprocess size ", opt.size,
                 " differs from its image_size ", S);
    float* dst = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      preprocess_blob(in.bytes, opt, dst, in.name);
    }
    return out;
  }

  py::dict info() {
    auto e = get();
    const ModelConfig& c = e->config();
    py::dict d;
    d["model_id"] = e->model_id();
    d["arch"] = c.name;
    d["embed_dim"] = c.embed_dim;
    d["image_size"] = c.vision.image_size;
    d["patch_size"] = c.vision.patch_size;
    d["vision_width"] = c.vision.width;
    d["vision_layers"] = c.vision.layers;
    d["text_width"] = c.text.width;
    d["text_layers"] = c.text.layers;
    d["context_length"] = c.text.context_length;
    d["vocab_size"] = c.text.vocab_size;
    d["quick_gelu"] = c.quick_gelu;
    d["logit_scale"] = e->logit_scale();
    d["mean"] = std::vector<float>(c.preprocess.mean.begin(), c.preprocess.mean.end());
    d["std"] = std::vector<float>(c.preprocess.std.begin(), c.preprocess.std.end());
    d["interpolation"] = c.preprocess.interpolation;
    d["precision"] = precision_;
    d["backend"] = backend_;
    d["threads"] = threads_;
    return d;
  }

  py::dict counters() {
    const EngineCounters c = get()->counters();
    py::dict d;
    d["image_items"] = c.image_items;
    d["text_items"] = c.text_items;
    d["image_batches"] = c.image_batches;
    d["text_batches"] = c.text_batches;
    d["label_cache_hits"] = c.label_cache_hits;
    d["label_cache_misses"] = c.label_cache_misses;
    d["overloaded"] = c.overloaded;
    d["queue_depth_images"] = get()->queue_depth_images();
    d["queue_depth_texts"] = get()->queue_depth_texts();
    return d;
  }

  std::string metrics_text() { return get()->metrics_text(); }

 private:
  std::shared_ptr<Engine> engine_;
  std::atomic<int> inflight_{0};
  std::string backend_, precision_;
  int threads_ = 0;
};

// open_clip.tokenize: (N, context_length) int64 ids, zero-padded, plus the truncation flags.
py::tuple tokenize(const py::sequence& texts, int context_length) {
  CS_CHECK_ARG(context_length >= 2, "context_length must be >= 2, got ", context_length);
  const std::vector<std::string> in = str_list(texts, "texts");
  py::array_t<int64_t> ids(
      {static_cast<py::ssize_t>(in.size()), static_cast<py::ssize_t>(context_length)});
  std::vector<bool> truncated(in.size());
  int64_t* dst = ids.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::fill(dst, dst + in.size() * context_length, 0);
    for (size_t i = 0; i < in.size(); ++i) {
      Tokens t;
      try {
        t = Tokenizer::get().encode(in[i], context_length);
      } catch (const Error& e) {
        throw Error(e.code(), "texts[" + std::to_string(i) + "]: " + e.what());
      }
      std::copy(t.ids.begin(), t.ids.end(), dst + i * context_length);
      truncated[i] = t.truncated;
    }
  }
  return py::make_tuple(ids, truncated);
}

}  // namespace
}  // namespace clipserve::python

PYBIND11_MODULE(_clipserve, m) {
  using namespace clipserve;
  using namespace clipserve::python;
  m.doc() = "clipserve native engine (use the clipserve package, not this module)";

  py::module_ errors = py::module_::import("clipserve._errors");
  g_base_error = py::object(errors.attr("ClipserveError")).release().ptr();
  const std::pair<ErrorCode, const char*> kClasses[] = {
      {ErrorCode::kInvalidArgument, "InvalidInput"},
      {ErrorCode::kNotFound, "NotFound"},
      {ErrorCode::kIo, "IoError"},
      {ErrorCode::kUnsupported, "Unsupported"},
      {ErrorCode::kTooLarge, "TooLarge"},
      {ErrorCode::kOverloaded, "Overloaded"},
      {ErrorCode::kUnavailable, "Unavailable"},
      {ErrorCode::kInternal, "InternalError"}};
  for (const auto& [code, name] : kClasses) {
    g_errors[static_cast<int>(code)] = py::object(errors.attr(name)).release().ptr();
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error_class(e.code()), e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const py::error_already_set&) {
      throw;
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const std::exception& e) {
      // Not a clipserve::Error: still a clipserve exception, never a crash.
      PyErr_SetString(error_class(ErrorCode::kInternal), e.what());
    }
  });

  py::class_<PyEngine>(m, "Engine")
      .def(py::init<const std::string&, const std::string&, const std::string&, int, int, int, int,
                    int, bool, const std::string&, int>(),
           py::arg("model"), py::arg("backend"), py::arg("precision"), py::arg("threads"),
           py::arg("max_batch"), py::arg("max_wait_us"), py::arg("max_queue"),
           py::arg("preprocess_threads"), py::arg("warmup"), py::arg("model_id"),
           py::arg("label_cache"))
      .def("embed_images", &PyEngine::embed_images)
      .def("embed_texts", &PyEngine::embed_texts)
      .def("classify", &PyEngine::classify)
      .def("put_label_set", &PyEngine::put_label_set)
      .def("get_label_set", &PyEngine::get_label_set)
      .def("delete_label_set", &PyEngine::delete_label_set)
      .def("label_set_names", &PyEngine::label_set_names)
      .def("preprocess", &PyEngine::preprocess)
      .def("info", &PyEngine::info)
      .def("counters", &PyEngine::counters)
      .def("metrics_text", &PyEngine::metrics_text)
      .def("close", &PyEngine::close)
      .def_property_readonly("closed", &PyEngine::closed);
  bind_detector(m);
  m.def("tokenize", &tokenize, py::arg("texts"), py::arg("context_length"));
  m.def("imagenet_templates", [] { return Engine::imagenet_templates(); });
  m.def("simple_templates", [] { return Engine::simple_templates(); });
  m.attr("version") = CLIPSERVE_VERSION;
}
