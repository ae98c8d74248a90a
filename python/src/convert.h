// Conversions shared by the extension's bindings (module.cpp, detect.cpp): Python str and
// buffers in, numpy arrays and timing dicts out, with clipserve errors naming the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <span>
#include <string>
#include <vector>

#include "clipserve/engine.h"
#include "core/check.h"

namespace clipserve::python {

namespace py = pybind11;

inline py::dict timings_dict(const StageTimings& t) {
  py::dict d;
  d["decode_ms"] = t.decode_ms;
  d["preprocess_ms"] = t.preprocess_ms;
  d["queue_ms"] = t.queue_ms;
  d["encode_ms"] = t.encode_ms;
  d["postprocess_ms"] = t.postprocess_ms;
  d["total_ms"] = t.total_ms;
  d["batches"] = t.batches;
  d["max_batch"] = t.max_batch;
  return d;
}

// Zero-copy (n, dim) float32 array owning the embedding vector.
inline py::array_t<float> to_array(std::vector<float>&& data, int n, int dim) {
  auto* v = new std::vector<float>(std::move(data));
  py::capsule owner(v, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return py::array_t<float>(
      {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)},
      {static_cast<py::ssize_t>(dim * sizeof(float)), static_cast<py::ssize_t>(sizeof(float))},
      v->data(), owner);
}

inline std::string utf8(py::handle s, const std::string& what) {
  if (!PyUnicode_Check(s.ptr())) {
    CS_THROW(kInvalidArgument, what, " must be a str, got ",
             py::str(s.get_type().attr("__name__")).cast<std::string>());
  }
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
  if (!p) {
    PyErr_Clear();
    CS_THROW(kInvalidArgument, what, ": not encodable as UTF-8 (lone surrogate)");
  }
  return std::string(p, static_cast<size_t>(n));
}

inline std::vector<std::string> str_list(const py::sequence& seq, const char* field) {
  std::vector<std::string> out;
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) {
    out.push_back(utf8(seq[i], std::string(field) + "[" + std::to_string(i) + "]"));
  }
  return out;
}

// A C-contiguous view of a Python buffer (bytes, bytearray, memoryview, numpy array): a
// strided view is refused rather than read past its end.
class ContiguousBuffer {
 public:
  ContiguousBuffer(py::handle obj, const std::string& what) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
      PyErr_Clear();
      CS_THROW(kInvalidArgument, what,
               ": expected a contiguous buffer (bytes, bytearray, a C-contiguous array), got ",
               py::str(obj.get_type().attr("__name__")).cast<std::string>());
    }
  }
  ~ContiguousBuffer() { PyBuffer_Release(&view_); }
  ContiguousBuffer(const ContiguousBuffer&) = delete;
  ContiguousBuffer& operator=(const ContiguousBuffer&) = delete;
  std::span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(view_.buf), static_cast<size_t>(view_.len)};
  }
  std::string format() const { return view_.format ? view_.format : "B"; }
  Py_ssize_t itemsize() const { return view_.itemsize; }

 private:
  Py_buffer view_{};
};

/// Binds clipserve.Detector (detect.cpp).
void bind_detector(py::module_& m);

}  // namespace clipserve::python
