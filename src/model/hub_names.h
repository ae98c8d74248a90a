// Model names as users write them, resolved to a source: a local directory, an open_clip
// pretrained tag (`ViT-B-32/laion2b_s34b_b79k`, facts from open_clip's pretrained.py), or
// any hub repository (`hf-hub:ORG/NAME[@REVISION]`).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace clipserve {

/// One entry of open_clip's pretrained table for the architectures clipserve implements.
struct PretrainedTag {
  std::string arch;         ///< e.g. "ViT-B-32"
  std::string tag;          ///< e.g. "laion2b_s34b_b79k"
  std::string repo_id;      ///< hub repository holding the weights
  bool quick_gelu = false;  ///< trained with QuickGELU (openai, laion400m B-32, metaclip)
  std::optional<std::array<float, 3>> mean, std;  ///< when not the OpenAI values
};

/// Every known (arch, tag) pair.
const std::vector<PretrainedTag>& pretrained_tags();
/// open_clip's tag normalization: lower case, '-' -> '_'.
std::string normalize_pretrained_tag(const std::string& tag);

struct ModelSource {
  enum class Kind { kLocalDir, kPretrained, kHubRepo };
  Kind kind = Kind::kLocalDir;
  std::string path;          ///< kLocalDir
  PretrainedTag pretrained;  ///< kPretrained
  std::string repo_id;       ///< kPretrained and kHubRepo
  std::string revision = "main";
};

/// Resolves a model argument: an existing directory; `hf-hub:ORG/NAME[@REV]`;
/// `ARCH/TAG` or `ARCH:TAG` from the pretrained table. Throws Error(kNotFound) listing the
/// known tags of the architecture (or the architectures) when nothing matches.
ModelSource parse_model_name(const std::string& name);

}  // namespace clipserve
