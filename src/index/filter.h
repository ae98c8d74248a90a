// Marqo filter strings (`year:[2000 TO 2010] AND (tags:beach OR NOT _id:x)`) parsed into a
// SQL boolean expression over the documents table `d` (metadata as JSON text in d.metadata).
#pragma once

#include <string>
#include <vector>

#include "index/sqlite.h"

namespace clipserve::index {

struct SqlFilter {
  std::string sql;               ///< a boolean expression; "1" when the filter is empty
  std::vector<SqlValue> params;  ///< bound to its `?` in order
};

/// Parses `filter`; throws Error(kInvalidArgument) "filter: ... at offset N" when malformed.
/// Grammar (NOT binds tighter than AND, AND tighter than OR; no implicit operator):
///   expr  := and (OR and)*          and := unary (AND unary)*
///   unary := NOT unary | '(' expr ')' | field ':' value | field ':' '[' lo TO hi ']'
///          | field IN '(' value (',' value)* ')'
///   value := bare word | "quoted \" string" | '(' words ')'
/// An unquoted value that reads as a number also matches that number; unquoted true/false
/// match booleans. `*` as a range end leaves it open. On an array field a value matches when
/// the array holds it. `_id` is the document id (equality and IN only).
SqlFilter parse_filter(const std::string& filter);

}  // namespace clipserve::index
