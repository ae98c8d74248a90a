// Detector: open-vocabulary object detection with OWL-ViT (transformers'
// OwlViTForObjectDetection, v1), numbers identical to transformers 4.30 at fp32: free-text
// queries ("a red mug") or an example image, boxes in pixels of the original image.
//
//   clipserve::DetectorOptions opt;                  // cpu backend, fp32, warm-up on
//   auto det = clipserve::Detector::load("google/owlvit-base-patch32", opt);  // or a directory
//
//   clipserve::DetectParams p;                       // threshold 0.1: transformers' defaults
//   auto r = det->detect(jpeg_bytes, {"a red mug", "a cat"}, p, "kitchen.jpg");
//   for (const auto& d : r.detections)
//     std::printf("%s %.3f [%.1f %.1f %.1f %.1f]\n", d.label.c_str(), d.score, d.box[0],
//                 d.box[1], d.box[2], d.box[3]);
//
//   // New queries about an image already seen run only the class head (milliseconds):
//   auto r2 = det->detect(jpeg_bytes, {"a spoon"}, p);   // r2.image_cached == true
//
//   // Image-guided (one-shot): find what an example image (or a box of it) shows.
//   auto r3 = det->detect_by_example(jpeg_bytes, example_bytes, std::nullopt, p);
//
// Defaults follow transformers' post_process_object_detection exactly: score = sigmoid of the
// best query's logit, kept when > threshold, boxes (x0, y0, x1, y1) scaled to the original
// image size, NOT clipped, no NMS, in patch order. clip_boxes / nms_iou / sort_by_score /
// top_k leave transformers' output (see docs/detect.md). Queries longer than 16 tokens
// (start and end included) are an error naming the query unless truncate_queries is set.
//
// Thread-safety: every member function may be called concurrently from any number of
// threads. Images are decoded on the calling thread and batched (up to max_batch images from
// concurrent calls); the towers and heads run on the process's one compute thread, shared with
// every Encoder, query texts before image batches.
//
// Errors: Error(kInvalidArgument) for bad images (naming `name`), empty or too long queries
// (naming the query), bad parameters, and checkpoints that are not OWL-ViT v1 (unknown
// tensors are named); Error(kNotFound) for a model that is neither a directory nor a hub
// repository. An image that fails is not cached.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clipserve/engine.h"
#include "clipserve/model_config.h"

namespace clipserve {

struct DetectorOptions {
  std::string backend = "cpu";     ///< "cpu" (oneDNN) or "reference" (plain loops, slow)
  std::string precision = "fp32";  ///< "fp32" or "bf16" (cpu backend)
  int threads = 0;                 ///< compute threads (0 = all cores)
  /// Largest number of images the vision tower runs at once (concurrent requests coalesce).
  int max_batch = 4;
  /// While the tower is busy, a new image waits up to this long for its batch to fill.
  int max_wait_us = 2000;
  /// Images whose feature map, boxes and class embeddings are kept (LRU by content hash).
  size_t image_cache_entries = 16;
  /// Query texts whose embeddings are kept (LRU).
  size_t query_cache_entries = 4096;
  /// Run every batch size and query shape once in load(), so no request pays for kernel
  /// generation.
  bool warmup = true;
  std::string model_id;  ///< names the model in responses (empty = the model argument)
};

struct DetectParams {
  float threshold = 0.1f;  ///< keep score > threshold (transformers' default 0.1)
  // ---- options beyond transformers (off by default) ----
  bool clip_boxes = false;        ///< clamp boxes to the image
  float nms_iou = 0;              ///< > 0: per-label greedy NMS, drop boxes with IoU > nms_iou
  bool sort_by_score = false;     ///< descending score instead of patch order
  int top_k = 0;                  ///< > 0: keep the top_k scores (implies sorting)
  bool truncate_queries = false;  ///< cut queries to 16 tokens instead of failing
  /// Image-guided only: transformers 4.30's post_process_image_guided_detection (NMS at
  /// nms_iou, default 0.3; scores rescaled to "alphas"; threshold applied to the alphas,
  /// default 0.6) instead of the plain text-query rules. Set by detect_by_example's callers.
  bool image_guided_alpha = true;
};

struct DetectedObject {
  std::string label;    ///< the query text ("" for image-guided queries)
  int label_index = 0;  ///< index into the queries
  float score = 0;
  std::array<float, 4> box{};  ///< x0, y0, x1, y1 in pixels of the original image
};

struct DetectionResult {
  int image_width = 0, image_height = 0;  ///< of the decoded image (EXIF orientation ignored)
  std::vector<DetectedObject> detections;
  int boxes = 0;                       ///< N = grid * grid predicted boxes
  int queries = 0;                     ///< Q
  std::vector<float> logits;           ///< N x Q raw logits (transformers' outputs.logits)
  std::vector<float> pred_boxes;       ///< N x 4 (cx, cy, w, h) in [0, 1]
  bool image_cached = false;           ///< the image's features came from the cache
  int queries_encoded = 0;             ///< queries run through the text tower (others were cached)
  std::vector<int> truncated_queries;  ///< indices cut to 16 tokens (truncate_queries)
  int example_box_index = -1;          ///< image-guided: the example box chosen as the query
  StageTimings timings;  ///< preprocess, queue, encode (vision + text), postprocess, total
};

struct DetectorCounters {
  uint64_t images_encoded = 0, image_batches = 0;
  uint64_t image_cache_hits = 0, image_cache_misses = 0;
  uint64_t query_cache_hits = 0, query_cache_misses = 0;
};

class Detector {
 public:
  /// A directory (config.json + model.safetensors / pytorch_model.bin) or a hub name
  /// (google/owlvit-base-patch32, -patch16, google/owlvit-large-patch14, hf-hub:ORG/NAME),
  /// downloaded into the Hugging Face cache. Warms up before returning when opt.warmup.
  static std::unique_ptr<Detector> load(const std::string& model, const DetectorOptions& opt = {});
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  /// Text queries (1 or more, each non-empty).
  DetectionResult detect(std::span<const uint8_t> image, const std::vector<std::string>& queries,
                         const DetectParams& params = {}, const std::string& name = "<memory>");
  /// One-shot: the query is the example image's box that best matches `example_box` (x0, y0,
  /// x1, y1 in the example's pixels; nullopt = the whole example, as transformers'
  /// image_guided_detection). With params.image_guided_alpha (default) the output follows
  /// transformers 4.30's post_process_image_guided_detection: pass threshold 0.6 and nms_iou
  /// 0.3 for its defaults.
  DetectionResult detect_by_example(std::span<const uint8_t> image,
                                    std::span<const uint8_t> example,
                                    std::optional<std::array<float, 4>> example_box,
                                    const DetectParams& params = {},
                                    const std::string& name = "<memory>");

  /// Runs every warm-up shape (load() does it when opt.warmup); ready() is true afterwards.
  void warm_up();
  bool ready() const;
  const ModelConfig& config() const;  ///< the CLIP towers (vision image_size = input size)
  const std::string& model_id() const;
  std::string backend_name() const;
  std::string precision() const;
  DetectorCounters counters() const;

  struct Impl;

 private:
  explicit Detector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipserve
