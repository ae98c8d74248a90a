// HTTP routes of collections under /indexes/... (Marqo-shaped; docs/collections.md): create,
// list and delete collections, add/get/delete documents, search, stats.
#pragma once

#include <memory>
#include <string>

#include "clipserve/engine.h"
#include "server/model_set.h"

namespace httplib {
class Server;
}

namespace clipserve::server {

struct IndexRouteOptions {
  std::string collections_dir;            ///< every subdirectory with a collection.db is served
  size_t max_documents_per_batch = 1024;  ///< larger add batches get 413
};

/// Owns the open collections (closed, with an HNSW snapshot each, when destroyed).
class IndexRoutes {
 public:
  virtual ~IndexRoutes() = default;
  /// Names of the collections found or created (for the startup log).
  virtual std::vector<std::string> names() const = 0;
};

/// Registers the /indexes routes on `http` (errors thrown in them become JSON 4xx through the
/// server's exception handler; the API key check applies as to every route). Opens every
/// collection under opt.collections_dir (creating the directory) with the engine's model;
/// throws Error(kUnsupported) when one holds another model's embeddings. The returned object
/// must outlive the server's run().
/// Each collection embeds with the served model it was built with (`models`); metrics go
/// to `reg` (the server's: Server::metrics()).
std::unique_ptr<IndexRoutes> register_index_routes(httplib::Server& http, ModelAccess models,
                                                   metrics::Registry& reg,
                                                   const IndexRouteOptions& opt);

}  // namespace clipserve::server
