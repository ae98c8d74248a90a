// The Hugging Face cache's files on disk, for hub.cpp: the digests a downloaded blob is
// verified by, atomic writes of refs and markers, and snapshots/<commit>/<file> links.
#pragma once

#include <cstdint>
#include <string>

namespace clipserve::hub_cache {

/// sha256 of the file (lowercase hex), or with git = true the git blob sha1:
/// sha1("blob <size>\0" + content). Throws Error(kIo) naming the path.
std::string file_digest(const std::string& path, bool git);

/// The file's size, or `fallback` when it cannot be stat'ed.
int64_t file_size_or(const std::string& path, int64_t fallback);

/// A temporary name next to `path` that no other thread or process uses at the same time.
std::string unique_tmp(const std::string& path);

/// Writes `text` to a temporary file and renames it over `path`. Throws Error(kIo).
void write_text_atomic(const std::string& path, const std::string& text);

/// repo_dir/snapshots/<commit>/<filename> -> ../../blobs/<etag> (relative, as
/// huggingface_hub makes it), replaced atomically. Throws Error(kIo).
void link_snapshot(const std::string& repo_dir, const std::string& commit,
                   const std::string& filename, const std::string& etag);

}  // namespace clipserve::hub_cache
