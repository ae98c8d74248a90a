// PyTorch `torch.save` zip checkpoints (.bin / .pt / .pth) read without Python: a zip reader
// (stored entries, zip64) and a small, safe unpickler that only rebuilds tensors
// (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over typed storages), dicts and
// OrderedDicts. Any other global (os.system, builtins.eval, ...) is refused before it could
// be called: nothing is ever executed. A writer produces the same format (tests, convert).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/weights.h"

namespace clipserve {

/// Loads the float tensors of a torch zip checkpoint: a state dict (dict / OrderedDict of
/// name -> tensor), or a dict holding one under "state_dict" (open_clip training
/// checkpoints; a "module." prefix is removed). F16/BF16/F64 are converted to float32;
/// integer tensors are skipped. Throws Error(kInvalidArgument) naming the file and the entry
/// or pickle opcode; Error(kUnsupported) for TorchScript archives.
WeightMap load_torch_checkpoint(const std::string& path);
/// The same on bytes in memory (`source` names them in errors; the fuzzer uses this).
WeightMap parse_torch_checkpoint(std::span<const uint8_t> file, const std::string& source);

/// Writes float32 tensors as torch.save would (zip of archive/data.pkl with an OrderedDict
/// of _rebuild_tensor_v2 calls, archive/data/<i>, archive/version, archive/byteorder).
void write_torch_checkpoint(const std::string& path, const std::vector<TensorToWrite>& tensors);

/// Builds a zip archive of stored entries (name, bytes), 64-byte aligned data like torch.
std::vector<uint8_t> make_stored_zip(
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries);

}  // namespace clipserve
