// The open_clip state-dict layout of a ModelConfig: every tensor name and shape, in the order
// open_clip's CLIP.state_dict() lists them, and a check of a WeightMap against it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

/// All tensors of open_clip's CLIP(**model_cfg).state_dict(), in its order.
std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg);

/// Checks that `weights` holds exactly the expected tensors with the expected shapes (as
/// open_clip's load_state_dict(strict=True) does). Throws Error(kInvalidArgument) naming
/// weights.source() and the first missing, misshapen or unexpected tensor.
void check_weights(const WeightMap& weights, const ModelConfig& cfg);

}  // namespace clipserve
