// Evaluation of a model on the user's own data: zero-shot classification on an ImageFolder and
// image/text retrieval on a JSONL caption file, with the metrics clip_benchmark reports.
//
//   auto ds = clipserve::eval::load_image_folder("data/pets");      // one folder per class
//   // ... embed ds.files (L2-normalized) into img, class prompts into cls ...
//   auto r = clipserve::eval::zeroshot_metrics(img, cls, ds.labels, dim, 5);
//   std::printf("top-1 %.3f top-5 %.3f\n", r.top1, r.top5);
//
// `clipserve eval zeroshot|retrieval` (src/cli/cmd_eval.cpp) runs the whole pipeline. All
// functions are pure (thread-safe); they throw Error(kInvalidArgument) naming the file/line on
// bad input.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace clipserve::eval {

/// ImageFolder: DIR/<class>/<image> (class = folder name, sorted), or the classes listed in
/// DIR/classes.txt (one per line, in that order; each must be a folder). Files are sorted per
/// class; hidden files and files not ending in an image or .npy extension are skipped.
struct ImageFolder {
  std::vector<std::string> classes;
  std::vector<std::string> files;  ///< full paths
  std::vector<int> labels;         ///< class index per file
};
ImageFolder load_image_folder(const std::string& dir);

/// JSONL, one `{"image": PATH, "captions": [TEXT, ...]}` per line (Flickr30k / COCO style);
/// relative image paths are relative to the file's folder. Empty lines are skipped.
struct CaptionSet {
  std::vector<std::string> images;                 ///< full paths
  std::vector<std::vector<std::string>> captions;  ///< per image, at least one
};
CaptionSet load_caption_jsonl(const std::string& path);

struct ClassResult {
  std::string name;
  int n = 0;        ///< items of this class
  double top1 = 0;  ///< recall of the class (fraction of its items predicted as it)
};
struct ZeroShotResult {
  int n = 0;
  double top1 = 0, top5 = 0;
  double mean_per_class_recall = 0;  ///< mean of per-class top-1 over classes with items
  std::vector<ClassResult> per_class;
  /// (true, predicted) class pairs of top-1 errors, most frequent first, with counts.
  std::vector<std::pair<std::pair<int, int>, int>> confusions;
  std::vector<int> predictions;  ///< top-1 class per item
};
/// img: n x dim, cls: classes x dim (rows L2-normalized); labels: class per image. An item is
/// in the top k when fewer than k classes score higher than its class (ties: lower index
/// first), as torch.topk on the logits.
ZeroShotResult zeroshot_metrics(const std::vector<float>& img, const std::vector<float>& cls,
                                const std::vector<int>& labels, int dim, int top_k = 5);

struct RetrievalResult {
  int images = 0, texts = 0;
  std::vector<int> ks;                ///< 1, 5, 10
  std::vector<double> image_to_text;  ///< recall@k: an image hits when any caption is in its top k
  std::vector<double> text_to_image;  ///< recall@k: a caption hits when its image is in its top k
  std::vector<int> text_top1;         ///< best image per text
};
/// img: images x dim, txt: texts x dim (normalized); text_image[t]: the image text t belongs to.
RetrievalResult retrieval_metrics(const std::vector<float>& img, const std::vector<float>& txt,
                                  const std::vector<int>& text_image, int dim,
                                  std::vector<int> ks = {1, 5, 10});

/// The template set of open_clip's ImageNet zero-shot classifier (the Engine's own list).
const std::vector<std::string>& imagenet_templates();

}  // namespace clipserve::eval
