// The open_clip pretrained table (src/open_clip/pretrained.py) for clipserve's architectures,
// and model-name parsing.
#include "model/hub_names.h"

#include <filesystem>

#include "clipserve/model_config.h"
#include "core/check.h"

namespace clipserve {

namespace {

constexpr std::array<float, 3> kInceptionMean{0.5f, 0.5f, 0.5f};

struct Row {
  const char* arch;
  const char* tag;
  const char* repo;
  bool quick_gelu;
  bool inception_mean_std;
};

// Weights trained with QuickGELU are flagged as open_clip's table flags them (quick_gelu=True):
// OpenAI's, the LAION-400M ViT-B-32 runs and MetaCLIP. The "-quickgelu" architectures list the
// same weights; on the plain architecture clipserve still applies QuickGELU for them, which is
// what open_clip does for `openai` (and what it warns about for the others).
constexpr Row kRows[] = {
    // ViT-B-32
    {"ViT-B-32", "openai", "timm/vit_base_patch32_clip_224.openai", true, false},
    {"ViT-B-32", "laion400m_e31", "timm/vit_base_patch32_clip_224.laion400m_e31", true, false},
    {"ViT-B-32", "laion400m_e32", "timm/vit_base_patch32_clip_224.laion400m_e32", true, false},
    {"ViT-B-32", "laion2b_e16", "timm/vit_base_patch32_clip_224.laion2b_e16", false, false},
    {"ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", false, false},
    {"ViT-B-32", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K", false,
     false},
    {"ViT-B-32", "datacomp_m_s128m_b4k", "laion/CLIP-ViT-B-32-DataComp.M-s128M-b4K", false, false},
    {"ViT-B-32", "commonpool_m_clip_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.clip-s128M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_m_laion_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.laion-s128M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_m_image_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.image-s128M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_m_text_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.text-s128M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_m_basic_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.basic-s128M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_m_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M-s128M-b4K", false,
     false},
    {"ViT-B-32", "datacomp_s_s13m_b4k", "laion/CLIP-ViT-B-32-DataComp.S-s13M-b4K", false, false},
    {"ViT-B-32", "commonpool_s_clip_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.clip-s13M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_s_laion_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.laion-s13M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_s_image_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.image-s13M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_s_text_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.text-s13M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_s_basic_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.basic-s13M-b4K",
     false, false},
    {"ViT-B-32", "commonpool_s_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S-s13M-b4K", false,
     false},
    {"ViT-B-32", "metaclip_400m", "timm/vit_base_patch32_clip_224.metaclip_400m", true, false},
    {"ViT-B-32", "metaclip_fullcc", "timm/vit_base_patch32_clip_224.metaclip_2pt5b", true, false},
    // ViT-B-32-quickgelu
    {"ViT-B-32-quickgelu", "openai", "timm/vit_base_patch32_clip_224.openai", true, false},
    {"ViT-B-32-quickgelu", "laion400m_e31", "timm/vit_base_patch32_clip_224.laion400m_e31", true,
     false},
    {"ViT-B-32-quickgelu", "laion400m_e32", "timm/vit_base_patch32_clip_224.laion400m_e32", true,
     false},
    {"ViT-B-32-quickgelu", "metaclip_400m", "timm/vit_base_patch32_clip_224.metaclip_400m", true,
     false},
    {"ViT-B-32-quickgelu", "metaclip_fullcc", "timm/vit_base_patch32_clip_224.metaclip_2pt5b", true,
     false},
    // ViT-B-16
    {"ViT-B-16", "openai", "timm/vit_base_patch16_clip_224.openai", true, false},
    {"ViT-B-16", "laion400m_e31", "timm/vit_base_patch16_clip_224.laion400m_e31", false, false},
    {"ViT-B-16", "laion400m_e32", "timm/vit_base_patch16_clip_224.laion400m_e32", false, false},
    {"ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", false, false},
    {"ViT-B-16", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K", false,
     false},
    {"ViT-B-16", "datacomp_l_s1b_b8k", "laion/CLIP-ViT-B-16-DataComp.L-s1B-b8K", false, false},
    {"ViT-B-16", "commonpool_l_clip_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.clip-s1B-b8K",
     false, false},
    {"ViT-B-16", "commonpool_l_laion_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.laion-s1B-b8K",
     false, false},
    {"ViT-B-16", "commonpool_l_image_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.image-s1B-b8K",
     false, false},
    {"ViT-B-16", "commonpool_l_text_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.text-s1B-b8K",
     false, false},
    {"ViT-B-16", "commonpool_l_basic_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.basic-s1B-b8K",
     false, false},
    {"ViT-B-16", "commonpool_l_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L-s1B-b8K", false, false},
    {"ViT-B-16", "metaclip_400m", "timm/vit_base_patch16_clip_224.metaclip_400m", true, false},
    {"ViT-B-16", "metaclip_fullcc", "timm/vit_base_patch16_clip_224.metaclip_2pt5b", true, false},
    // ViT-B-16-quickgelu
    {"ViT-B-16-quickgelu", "metaclip_400m", "timm/vit_base_patch16_clip_224.metaclip_400m", true,
     false},
    {"ViT-B-16-quickgelu", "metaclip_fullcc", "timm/vit_base_patch16_clip_224.metaclip_2pt5b", true,
     false},
    // ViT-L-14
    {"ViT-L-14", "openai", "timm/vit_large_patch14_clip_224.openai", true, false},
    {"ViT-L-14", "laion400m_e31", "timm/vit_large_patch14_clip_224.laion400m_e31", false, false},
    {"ViT-L-14", "laion400m_e32", "timm/vit_large_patch14_clip_224.laion400m_e32", false, false},
    {"ViT-L-14", "laion2b_s32b_b82k", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", false, true},
    {"ViT-L-14", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K", false,
     false},
    {"ViT-L-14", "commonpool_xl_clip_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL.clip-s13B-b90K",
     false, false},
    {"ViT-L-14", "commonpool_xl_laion_s13b_b90k",
     "laion/CLIP-ViT-L-14-CommonPool.XL.laion-s13B-b90K", false, false},
    {"ViT-L-14", "commonpool_xl_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K", false,
     false},
    {"ViT-L-14", "metaclip_400m", "timm/vit_large_patch14_clip_224.metaclip_400m", true, false},
    {"ViT-L-14", "metaclip_fullcc", "timm/vit_large_patch14_clip_224.metaclip_2pt5b", true, false},
    // ViT-L-14-quickgelu
    {"ViT-L-14-quickgelu", "metaclip_400m", "timm/vit_large_patch14_clip_224.metaclip_400m", true,
     false},
    {"ViT-L-14-quickgelu", "metaclip_fullcc", "timm/vit_large_patch14_clip_224.metaclip_2pt5b",
     true, false},
    // ViT-L-14-336
    {"ViT-L-14-336", "openai", "timm/vit_large_patch14_clip_336.openai", true, false},
};

}  // namespace

const std::vector<PretrainedTag>& pretrained_tags() {
  static const std::vector<PretrainedTag> tags = [] {
    std::vector<PretrainedTag> v;
    for (const auto& r : kRows) {
      PretrainedTag t;
      t.arch = r.arch;
      t.tag = r.tag;
      t.repo_id = r.repo;
      t.quick_gelu = r.quick_gelu;
      if (r.inception_mean_std) {
        t.mean = kInceptionMean;
        t.std = kInceptionMean;
      }
      v.push_back(std::move(t));
    }
    return v;
  }();
  return tags;
}

std::string normalize_pretrained_tag(const std::string& tag) {
  std::string r;
  for (char c : tag)
    r += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

ModelSource parse_model_name(const std::string& name) {
  namespace fs = std::filesystem;
  CS_CHECK_ARG(!name.empty(), "empty model name");
  ModelSource s;
  std::error_code ec;
  if (fs::is_directory(name, ec)) {
    s.kind = ModelSource::Kind::kLocalDir;
    s.path = name;
    return s;
  }
  if (name.rfind("hf-hub:", 0) == 0) {
    std::string rest = name.substr(7);
    size_t at = rest.find('@');
    s.kind = ModelSource::Kind::kHubRepo;
    s.repo_id = rest.substr(0, at);
    if (at != std::string::npos) s.revision = rest.substr(at + 1);
    CS_CHECK_ARG(s.repo_id.find('/') != std::string::npos && !s.revision.empty(), "model '", name,
                 "': expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION");
    return s;
  }
  size_t sep = name.find_first_of("/:");
  if (sep != std::string::npos) {
    std::string arch = name.substr(0, sep);
    std::string tag = normalize_pretrained_tag(name.substr(sep + 1));
    bool arch_known = false;
    std::string tags;
    for (const auto& t : pretrained_tags()) {
      if (t.arch != arch) continue;
      arch_known = true;
      if (t.tag == tag) {
        s.kind = ModelSource::Kind::kPretrained;
        s.pretrained = t;
        s.repo_id = t.repo_id;
        return s;
      }
      tags += (tags.empty() ? "" : ", ") + t.tag;
    }
    if (arch_known) {
      CS_THROW(kNotFound, "model '", name, "': unknown pretrained tag '", tag, "' for ", arch,
               " (known: ", tags, ")");
    }
  }
  std::string archs;
  for (const auto& a : builtin_model_names()) archs += (archs.empty() ? "" : ", ") + a;
  CS_THROW(kNotFound, "model '", name,
           "' is not a directory, not hf-hub:ORG/NAME, and not ARCH/TAG with a known "
           "architecture (",
           archs, "); `clipserve pull --list` shows every ARCH/TAG");
}

}  // namespace clipserve
