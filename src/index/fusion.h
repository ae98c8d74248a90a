// Reciprocal rank fusion of ranked lists (hybrid search) and the FTS5 query built from words.
#pragma once

#include <string>

#include "index/vector_index.h"

namespace clipserve::index {

/// score(doc) = sum over the lists that contain it of 1 / (k + rank), rank starting at 1.
/// Result by decreasing score; ties by smaller label.
Scored rrf_fuse(const std::vector<Scored>& lists, int k);

/// An FTS5 MATCH expression that matches any of the words of `text` (each word quoted, so
/// FTS5 operators in user text are plain words). Empty when `text` has no words.
std::string fts_query(const std::string& text);

}  // namespace clipserve::index
