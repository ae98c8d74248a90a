// A restricted unpickler for torch.save's data.pkl: an allowlist machine. GLOBAL names
// outside the tensor-rebuild set are refused when they are read, REDUCE only calls
// OrderedDict() and the rebuild functions, and every length, index and nesting depth is
// bounded, so a hostile file gives an Error and never runs anything.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace clipserve::torch_pickle {

struct PValue;
using PPtr = std::shared_ptr<PValue>;
struct PValue {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
  Kind kind = kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;            // str; global "module.name"; storage type name
  std::vector<PPtr> items;  // tuple / list; dict as k0, v0, k1, v1, ...
  std::string key;          // storage key
  int64_t numel = 0;        // storage elements
  PPtr storage;             // tensor
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
  int depth = 0;
  bool frozen = false;  // inside another container: no longer mutable (no cycles, exact depth)
};

/// torch.<T>Storage names and their element types.
extern const std::map<std::string, StDType> kStorageTypes;

/// The object data.pkl holds (tensors as kTensor values naming their storage). Throws
/// Error(kInvalidArgument) naming `src` on anything outside the allowlist or malformed.
PPtr unpickle(std::span<const uint8_t> data, const std::string& src);

}  // namespace clipserve::torch_pickle
