// Engine: a CLIP model loaded once and served to many threads: dynamic batching per tower,
// image decoding on a worker pool in parallel with inference, zero-shot classification with
// cached label features, warm-up before "ready", and per-request stage timings.
//
//   clipserve::EngineOptions opt;                    // max_batch 16, warm-up on
//   auto engine = clipserve::Engine::load("models/vit-b-32", opt);   // ready when it returns
//
//   // Embeddings (L2-normalized rows, in input order):
//   auto texts = engine->embed_texts({"a photo of a dog.", "a photo of a cat."});
//   auto imgs = engine->embed_images({clipserve::ImageInput::encoded(jpeg_bytes, "dog.jpg")});
//   const float* dog = imgs.row(0);                  // imgs.dim floats
//
//   // Zero-shot classification, open_clip style (labels sorted by probability):
//   clipserve::LabelQuery q;
//   q.labels = {"dog", "cat", "car"};
//   q.templates = clipserve::Engine::imagenet_templates();     // or simple_templates()
//   auto res = engine->classify({clipserve::ImageInput::encoded(jpeg_bytes, "dog.jpg")}, q);
//   std::printf("%s %.3f\n", res.images[0][0].label.c_str(), res.images[0][0].prob);
//
//   // Named label sets: features computed once, reused until replaced or deleted.
//   engine->put_label_set("animals", {"dog", "cat"}, clipserve::Engine::simple_templates());
//   clipserve::LabelQuery named;
//   named.label_set = "animals";
//
//   // Asynchronous submission: the future completes when the request's batches are done.
//   std::future<clipserve::Embeddings> f = engine->submit_texts({"hello"});
//
// Thread-safety: every public member function of Engine may be called concurrently from any
// number of threads. Requests are queued per tower (image, text) and coalesced into batches;
// the underlying Encoder is used by one batch at a time. Destroying the Engine waits for the
// requests already admitted; no call may race with the destructor.
//
// Errors: submit_* / embed_* / classify throw Error(kInvalidArgument) for bad arguments
// (naming the input index), Error(kOverloaded) when the tower's queue is full, and
// Error(kNotFound) for an unknown label set, before anything is queued. Image decoding errors
// (naming the input) arrive through the future (or are thrown by the blocking calls).
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clipserve/encoder.h"
#include "clipserve/model_config.h"

namespace clipserve {

namespace metrics {
class Registry;
}

struct EngineOptions {
  EncoderOptions encoder;
  /// Largest batch a tower runs at once.
  int max_batch = 16;
  /// While the encoder is busy, newly arrived items wait up to this long after the oldest one
  /// arrived for the batch to fill. An item that arrives at an idle tower is dispatched at once.
  int max_wait_us = 5000;
  /// Items (images or texts) admitted but not yet encoded, per tower; beyond it submit_* throws
  /// Error(kOverloaded). A single request larger than this is admitted when the queue is empty.
  int max_queue = 256;
  /// Threads decoding and preprocessing images (0 = hardware concurrency).
  int preprocess_threads = 0;
  /// Run every batch-size and text-length bucket once in load() / warm_up().
  bool warmup = true;
  /// Batch sizes to warm up (empty = powers of two up to max_batch, and max_batch).
  std::vector<int> warmup_batch_sizes;
  /// Text lengths (tokens, with start/end) to warm up (empty = 8, 16, 32, 64, context length).
  std::vector<int> warmup_text_lengths;
  /// Entries in the label-feature LRU cache (one entry = one template x label prompt).
  size_t label_cache_entries = 20000;
  /// Identifies the model in cache keys, /v1/models and responses (empty = directory name).
  std::string model_id;
  /// Registry the engine's metrics go to (null = its own). A server hosting several models
  /// shares one, and an engine reloaded after an idle unload keeps counting in the same series.
  std::shared_ptr<metrics::Registry> metrics;
  /// Labels added to every series the engine registers (e.g. {"model", id}).
  std::vector<std::pair<std::string, std::string>> metric_labels;
};

/// Wall-clock milliseconds per stage of one request.
/// decode: image decoding when the preprocessing front-end reports it apart (else 0 and it is
/// part of preprocess). preprocess: from submission until the last item was preprocessed
/// (images: decode + resize + crop + normalize on the worker pool; texts: tokenization).
/// queue: longest wait of one of the request's items between being queued and its batch
/// starting. encode: summed duration of the batches that carried the request's items.
/// postprocess: normalization / classification math. total: submission to completion.
struct StageTimings {
  double decode_ms = 0, preprocess_ms = 0, queue_ms = 0, encode_ms = 0, postprocess_ms = 0,
         total_ms = 0;
  int batches = 0;    ///< batches that carried the request's items
  int max_batch = 0;  ///< largest of those batches
};

/// One image to embed: encoded bytes (any format image.h decodes) or a preprocessed
/// 3 x S x S float32 tensor.
struct ImageInput {
  std::vector<uint8_t> bytes;
  std::vector<float> pixels;
  std::string name;  ///< used in error messages (file name, "images[3]")

  static ImageInput encoded(std::vector<uint8_t> b, std::string n = {}) {
    ImageInput in;
    in.bytes = std::move(b);
    in.name = std::move(n);
    return in;
  }
  static ImageInput preprocessed(std::vector<float> p, std::string n = {}) {
    ImageInput in;
    in.pixels = std::move(p);
    in.name = std::move(n);
    return in;
  }
};

struct Embeddings {
  int n = 0;
  int dim = 0;
  std::vector<float> data;         ///< n x dim, row-major
  std::vector<int> token_counts;   ///< texts only: ids per text, start/end included
  std::vector<uint8_t> truncated;  ///< texts only: 1 when the text was cut to the context
  StageTimings timings;
  const float* row(int i) const { return data.data() + static_cast<size_t>(i) * dim; }
};

/// Which labels to classify against: a registered label set, or labels + templates inline.
struct LabelQuery {
  std::string label_set;               ///< name given to put_label_set; overrides labels
  std::vector<std::string> labels;     ///< inline labels
  std::vector<std::string> templates;  ///< each contains "{}" (empty = {"a photo of a {}."})
  int top_k = 0;                       ///< 0 = all labels
};

struct LabelScore {
  std::string label;
  float prob = 0;    ///< softmax over the labels of logit_scale * cosine
  float cosine = 0;  ///< cosine of the image and the label's averaged text feature
};

struct Classification {
  std::vector<std::vector<LabelScore>> images;  ///< per image, by decreasing probability
  StageTimings timings;
  int text_encoded = 0;  ///< prompts encoded for this request (0 when all were cached)
};

struct LabelSetInfo {
  std::string name;
  std::vector<std::string> labels;
  std::vector<std::string> templates;
};

/// Counters for tests and monitoring (also exported in Prometheus form by metrics_text()).
struct EngineCounters {
  uint64_t image_items = 0, text_items = 0;      ///< items encoded
  uint64_t image_batches = 0, text_batches = 0;  ///< batches run
  uint64_t label_cache_hits = 0, label_cache_misses = 0;
  uint64_t overloaded = 0;
};

/// Turns inputs into encoder inputs. The defaults (Engine::load) use Tokenizer::get() and
/// preprocess_image(); tests inject their own.
struct EngineFrontends {
  /// Text -> ids with start/end token, at most context_length ids. Throws Error on bad text.
  std::function<std::vector<int32_t>(std::string_view text, int context_length)> tokenize;
  /// Encoded image -> 3 x S x S floats at `out`; may set *decode_ms when it can time decoding
  /// apart. Throws Error naming `name` on bad images.
  std::function<void(std::span<const uint8_t> bytes, float* out, const std::string& name,
                     double* decode_ms)>
      preprocess;
};

class Engine {
 public:
  /// Loads the model directory with Encoder::load and the real tokenizer/preprocessing, then
  /// warms up (when options.warmup) and returns a ready engine.
  static std::unique_ptr<Engine> load(const std::string& model_dir, const EngineOptions& opt);
  /// Builds an engine on an already loaded encoder and the given front-ends. Does NOT warm up:
  /// call warm_up() (possibly from another thread; ready() turns true when it finishes).
  static std::unique_ptr<Engine> create(std::unique_ptr<Encoder> encoder, EngineFrontends frontends,
                                        const EngineOptions& opt);
  /// The real front-ends for a model configuration (tokenizer + open_clip preprocessing).
  /// `max_pixels` (0 = Pillow's limit) caps the decoded size of one image (kTooLarge beyond).
  static EngineFrontends default_frontends(const ModelConfig& cfg, uint64_t max_pixels = 0);

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Runs every warm-up bucket through both towers, then marks the engine ready.
  void warm_up();
  bool ready() const;

  std::future<Embeddings> submit_images(std::vector<ImageInput> images, bool normalize = true);
  std::future<Embeddings> submit_texts(std::vector<std::string> texts, bool normalize = true);
  std::future<Classification> submit_classify(std::vector<ImageInput> images,
                                              const LabelQuery& query);

  Embeddings embed_images(std::vector<ImageInput> images, bool normalize = true);
  Embeddings embed_texts(std::vector<std::string> texts, bool normalize = true);
  Classification classify(std::vector<ImageInput> images, const LabelQuery& query);

  /// Computes the label set's features (cache-aware) and stores them under `name`, replacing
  /// an existing set. Blocks until the text features are computed. Returns true if replaced.
  bool put_label_set(const std::string& name, std::vector<std::string> labels,
                     std::vector<std::string> templates);
  std::optional<LabelSetInfo> get_label_set(const std::string& name) const;
  bool delete_label_set(const std::string& name);
  std::vector<std::string> label_set_names() const;

  const ModelConfig& config() const;
  const std::string& model_id() const;
  int embed_dim() const;
  float logit_scale() const;
  /// Items admitted and not yet finished, per tower.
  int queue_depth_images() const;
  int queue_depth_texts() const;

  EngineCounters counters() const;
  /// The engine's metrics; the server registers its own HTTP metrics here too.
  metrics::Registry& metrics();
  /// Prometheus text exposition format (version 0.0.4) of all registered metrics.
  std::string metrics_text() const;

  /// open_clip's OPENAI_IMAGENET_TEMPLATES (80 prompts) with "{}" for the class name.
  static const std::vector<std::string>& imagenet_templates();
  /// The single prompt "a photo of a {}.".
  static const std::vector<std::string>& simple_templates();
  /// Replaces every "{}" in `tmpl` by `label`; throws kInvalidArgument if there is none.
  static std::string apply_template(const std::string& tmpl, const std::string& label);

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipserve
