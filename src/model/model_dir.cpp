// Model directories in every supported format, and model names resolved through the hub.
#include "model/model_dir.h"

#include <filesystem>

#include "core/check.h"
#include "core/file.h"
#include "model/hf_format.h"
#include "model/hub_names.h"
#include "model/layout.h"
#include "model/owlvit_format.h"
#include "model/safetensors.h"
#include "model/torch_zip.h"

namespace clipserve {

namespace fs = std::filesystem;

namespace {

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// Tries each file in turn; the first that exists on the hub (or in the cache when offline)
// wins. Returns the snapshot path, or nullopt when none exists (404 for all).
std::optional<std::string> fetch_first(const std::string& repo, const std::string& revision,
                                       const std::vector<std::string>& files, const HubOptions& opt,
                                       std::vector<std::string>* tried) {
  for (const auto& f : files) {
    tried->push_back(f);
    if (opt.offline) {
      if (auto c = hub_cached_file(repo, f, revision, opt)) return c->path;
      continue;  // a later alternative may be cached; the caller reports all if none is
    }
    try {
      return hub_download(repo, f, revision, opt).path;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  }
  return std::nullopt;
}

std::string join(const std::vector<std::string>& v) {
  std::string r;
  for (const auto& s : v) r += (r.empty() ? "" : ", ") + s;
  return r;
}

}  // namespace

const char* model_format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::kOpenClipSafetensors:
      return "open_clip safetensors";
    case ModelFormat::kOpenClipTorch:
      return "open_clip torch zip";
    case ModelFormat::kHfSafetensors:
      return "transformers CLIPModel safetensors";
    case ModelFormat::kHfTorch:
      return "transformers CLIPModel torch zip";
  }
  return "?";
}

ModelFormat detect_model_format(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (fs::exists(dir, ec)) CS_THROW(kInvalidArgument, dir, ": not a model directory");
    CS_THROW(kNotFound, dir, ": model directory not found");
  }
  if (exists(dir + "/open_clip_model.safetensors")) return ModelFormat::kOpenClipSafetensors;
  if (exists(dir + "/open_clip_pytorch_model.bin")) return ModelFormat::kOpenClipTorch;
  if (exists(dir + "/config.json") && exists(dir + "/model.safetensors"))
    return ModelFormat::kHfSafetensors;
  if (exists(dir + "/config.json") && exists(dir + "/pytorch_model.bin"))
    return ModelFormat::kHfTorch;
  CS_THROW(kInvalidArgument, dir,
           ": no model files found (looked for open_clip_model.safetensors or "
           "open_clip_pytorch_model.bin with open_clip_config.json, or transformers "
           "config.json with model.safetensors or pytorch_model.bin)");
}

ModelConfig load_model_dir_config(const std::string& dir) {
  ModelFormat fmt = detect_model_format(dir);
  if (fmt == ModelFormat::kOpenClipSafetensors || fmt == ModelFormat::kOpenClipTorch) {
    CS_CHECK_ARG(exists(dir + "/open_clip_config.json"), dir,
                 ": open_clip_config.json is missing (needed to know the architecture)");
    return load_model_config(dir + "/open_clip_config.json");
  }
  std::string pre = exists(dir + "/preprocessor_config.json")
                        ? read_file_text(dir + "/preprocessor_config.json")
                        : std::string();
  const std::string config = read_file_text(dir + "/config.json");
  // OWL-ViT's towers are CLIP's: its config (preprocessing included) is that of its towers.
  if (is_owlvit_config(config)) return parse_owlvit_config(config, dir + "/config.json", pre);
  return parse_hf_clip_config(config, dir + "/config.json", pre);
}

LoadedModel load_model_dir(const std::string& dir,
                           const std::optional<ModelConfig>& config_override) {
  std::error_code ec;
  if (!config_override && !fs::exists(dir, ec)) {
    // Not a path: a model name (ARCH/TAG, hf-hub:...), so every `--model` accepts names.
    return load_model(dir);
  }
  ModelFormat fmt = detect_model_format(dir);
  if ((fmt == ModelFormat::kHfSafetensors || fmt == ModelFormat::kHfTorch) &&
      is_owlvit_config(read_file_text(dir + "/config.json"))) {
    CS_THROW(kUnsupported, dir,
             ": an OWL-ViT detection model (OwlViTForObjectDetection): use `clipserve detect` "
             "or clipserve::Detector (include/clipserve/detect.h)");
  }
  ModelConfig cfg = config_override ? *config_override : load_model_dir_config(dir);
  WeightMap w;
  switch (fmt) {
    case ModelFormat::kOpenClipSafetensors:
      w = load_safetensors(dir + "/open_clip_model.safetensors");
      break;
    case ModelFormat::kOpenClipTorch:
      w = load_torch_checkpoint(dir + "/open_clip_pytorch_model.bin");
      break;
    case ModelFormat::kHfSafetensors:
      w = hf_to_open_clip(load_safetensors(dir + "/model.safetensors"), cfg);
      break;
    case ModelFormat::kHfTorch:
      w = hf_to_open_clip(load_torch_checkpoint(dir + "/pytorch_model.bin"), cfg);
      break;
  }
  check_weights(w, cfg);
  return LoadedModel{std::move(cfg), std::move(w)};
}

ResolvedModel resolve_model(const std::string& name, const HubOptions& opt) {
  ModelSource src = parse_model_name(name);
  ResolvedModel r;
  if (src.kind == ModelSource::Kind::kLocalDir) {
    r.dir = src.path;
    r.description = "local directory " + src.path;
    return r;
  }
  std::vector<std::string> tried;
  const std::string& repo = src.repo_id;
  if (src.kind == ModelSource::Kind::kPretrained) {
    const PretrainedTag& t = src.pretrained;
    // As open_clip: the architecture's built-in config, the tag's preprocessing, and the
    // weights from the tag's hub repository (safetensors preferred, like open_clip).
    ModelConfig cfg = builtin_model_config(t.arch);
    cfg.name = t.arch + "/" + t.tag;
    cfg.quick_gelu = cfg.quick_gelu || t.quick_gelu;
    if (t.mean) cfg.preprocess.mean = *t.mean;
    if (t.std) cfg.preprocess.std = *t.std;
    auto w =
        fetch_first(repo, src.revision,
                    {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"}, opt, &tried);
    if (!w) {
      throw Error(
          opt.offline ? ErrorCode::kUnavailable : ErrorCode::kNotFound,
          detail::concat("model '", name, "': none of ", join(tried), " found in hub repository ",
                         repo, opt.offline ? " in the local cache (HF_HUB_OFFLINE is set)" : ""));
    }
    r.dir = fs::path(*w).parent_path().string();
    r.config = cfg;
    r.description = name + " (" + repo + ")";
    return r;
  }
  // hf-hub:ORG/NAME: an open_clip repository, or else a transformers CLIPModel one.
  if (auto c = fetch_first(repo, src.revision, {"open_clip_config.json"}, opt, &tried)) {
    auto w =
        fetch_first(repo, src.revision,
                    {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"}, opt, &tried);
    CS_CHECK_ARG(w.has_value(), "model '", name, "': ", repo,
                 " has open_clip_config.json but no open_clip_model.safetensors or "
                 "open_clip_pytorch_model.bin");
    r.dir = fs::path(*c).parent_path().string();
    if (fs::path(*w).parent_path() != fs::path(r.dir)) {
      CS_THROW(kInvalidArgument, "model '", name,
               "': config and weights resolved to different commits");
    }
  } else if (auto h = fetch_first(repo, src.revision, {"config.json"}, opt, &tried)) {
    auto w =
        fetch_first(repo, src.revision, {"model.safetensors", "pytorch_model.bin"}, opt, &tried);
    CS_CHECK_ARG(w.has_value(), "model '", name, "': ", repo,
                 " has config.json but no model.safetensors or pytorch_model.bin");
    std::vector<std::string> more;
    fetch_first(repo, src.revision, {"preprocessor_config.json"}, opt, &more);  // optional
    r.dir = fs::path(*h).parent_path().string();
  } else {
    throw Error(
        opt.offline ? ErrorCode::kUnavailable : ErrorCode::kNotFound,
        detail::concat("model '", name, "': none of ", join(tried), " found in hub repository ",
                       repo, opt.offline ? " in the local cache (HF_HUB_OFFLINE is set)" : ""));
  }
  r.description = name;
  return r;
}

ModelConfig load_model_config_for(const std::string& name) {
  ResolvedModel r = resolve_model(name, hub_options_from_env());
  return r.config ? *r.config : load_model_dir_config(r.dir);
}

LoadedModel load_model(const std::string& name) { return load_model(name, hub_options_from_env()); }

LoadedModel load_model(const std::string& name, const HubOptions& opt) {
  ResolvedModel r = resolve_model(name, opt);
  return load_model_dir(r.dir, r.config);
}

}  // namespace clipserve
