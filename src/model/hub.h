// Hugging Face hub downloads into the shared hub cache layout
// (`<cache>/models--ORG--NAME/{blobs,snapshots,refs}`), so files fetched by open_clip or
// transformers are reused and ours are reused by them. libcurl; resumable; verified.
//
//   HubOptions opt = hub_options_from_env();   // HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN, ...
//   HubFile f = hub_download("laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
//                            "open_clip_model.safetensors", "main", opt);
//   // f.path: <cache>/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/<commit>/...
//
// Thread-safety: functions are reentrant; two processes downloading the same blob at once
// may both download it (the last rename wins; both results are complete and verified).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace clipserve {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  ///< HF_ENDPOINT (mirrors)
  std::string cache_dir;  ///< HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
  std::string token;      ///< HF_TOKEN, else the file $HF_HOME/token (HF_TOKEN_PATH)
  bool offline = false;   ///< HF_HUB_OFFLINE=1: never touch the network, cache only
  /// Ask the hub for the current revision even when the cache already has the file
  /// (`clipserve pull --refresh`). Off: a cached file is used without any request.
  bool check_remote = false;
  bool progress = true;  ///< progress bar on stderr when it is a terminal
  int max_attempts = 4;  ///< resumed retries after a dropped connection
  long connect_timeout_s = 15;
  long stall_timeout_s = 60;  ///< abort an attempt that receives nothing for this long
};

/// Options from the environment, as huggingface_hub reads them.
HubOptions hub_options_from_env();

struct HubFile {
  std::string path;         ///< the snapshot path (a symlink into blobs/)
  std::string commit;       ///< the revision's commit hash
  bool downloaded = false;  ///< false when served from the cache
};

/// `<cache>/models--ORG--NAME`.
std::string hub_repo_cache_dir(const std::string& cache_dir, const std::string& repo_id);

/// The cached snapshot file of `repo_id@revision`, if present (no network).
std::optional<HubFile> hub_cached_file(const std::string& repo_id, const std::string& filename,
                                       const std::string& revision, const HubOptions& opt);

/// True when the cache records that the file does not exist at the revision's commit
/// (`.no_exist/<commit>/<file>`, written by huggingface_hub and by us after a 404).
bool hub_known_missing(const std::string& repo_id, const std::string& filename,
                       const std::string& revision, const HubOptions& opt);

/// Downloads one file of a model repository into the cache (or finds it there) and returns
/// its snapshot path. Errors: kNotFound (repo/file/revision does not exist: 404),
/// kUnavailable (offline and not cached, hub unreachable), kInvalidArgument (401/403: gated,
/// private, bad token), kIo (disk full, checksum mismatch, write errors).
HubFile hub_download(const std::string& repo_id, const std::string& filename,
                     const std::string& revision, const HubOptions& opt);

/// Counts HTTP requests made by this process (tests check that a cached run makes none).
uint64_t hub_request_count();

}  // namespace clipserve
