// The JPEG the engine's warm-up decodes on each preprocessing thread.
#pragma once

#include <cstdint>
#include <span>

namespace clipserve::engine {

std::span<const uint8_t> warmup_jpeg();

}  // namespace clipserve::engine
