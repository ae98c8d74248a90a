// embed_documents(): a batch of documents through the Engine, one request per document so the
// batcher coalesces them and a corrupt image fails only its own document.
#include <deque>
#include <future>

#include "clipserve/collection.h"
#include "clipserve/engine.h"
#include "clipserve/error.h"

namespace clipserve {

std::vector<std::string> embed_documents(Engine& engine, std::vector<DocumentSource>& docs) {
  std::vector<std::string> errors(docs.size());
  struct Pending {
    size_t i;
    std::future<Embeddings> f;
  };
  std::deque<Pending> inflight;
  auto finish_one = [&] {
    Pending p = std::move(inflight.front());
    inflight.pop_front();
    try {
      Embeddings e = p.f.get();
      docs[p.i].doc.vector.assign(e.row(0), e.row(0) + e.dim);
    } catch (const std::exception& ex) {
      errors[p.i] = ex.what();
    }
  };
  for (size_t i = 0; i < docs.size(); ++i) {
    auto& d = docs[i];
    if (!d.doc.vector.empty()) continue;
    if (d.image_bytes.empty() && (!d.doc.text || d.doc.text->empty())) {
      errors[i] = "nothing to embed: give an image, a text or a vector";
      continue;
    }
    while (true) {
      try {
        std::future<Embeddings> f;
        if (!d.image_bytes.empty()) {
          f = engine.submit_images({ImageInput::encoded(d.image_bytes, d.name)});
        } else {
          f = engine.submit_texts({*d.doc.text});
        }
        inflight.push_back({i, std::move(f)});
        break;
      } catch (const Error& e) {
        // A full queue: wait for our oldest request, then retry. Anything else is this
        // document's error (bad text, ...).
        if (e.code() == ErrorCode::kOverloaded && !inflight.empty()) {
          finish_one();
          continue;
        }
        errors[i] = e.what();
        break;
      }
    }
  }
  while (!inflight.empty()) finish_one();
  return errors;
}

}  // namespace clipserve
