// Prompt template sets for zero-shot classification: open_clip's OPENAI_IMAGENET_TEMPLATES
// (the 80 prompts of CLIP's ImageNet evaluation, same order) and a single-prompt set.
#include "clipserve/engine.h"
#include "core/check.h"

namespace clipserve {

const std::vector<std::string>& Engine::imagenet_templates() {
  static const std::vector<std::string> kTemplates = {
      "a bad photo of a {}.",
      "a photo of many {}.",
      "a sculpture of a {}.",
      "a photo of the hard to see {}.",
      "a low resolution photo of the {}.",
      "a rendering of a {}.",
      "graffiti of a {}.",
      "a bad photo of the {}.",
      "a cropped photo of the {}.",
      "a tattoo of a {}.",
      "the embroidered {}.",
      "a photo of a hard to see {}.",
      "a bright photo of a {}.",
      "a photo of a clean {}.",
      "a photo of a dirty {}.",
      "a dark photo of the {}.",
      "a drawing of a {}.",
      "a photo of my {}.",
      "the plastic {}.",
      "a photo of the cool {}.",
      "a close-up photo of a {}.",
      "a black and white photo of the {}.",
      "a painting of the {}.",
      "a painting of a {}.",
      "a pixelated photo of the {}.",
      "a sculpture of the {}.",
      "a bright photo of the {}.",
      "a cropped photo of a {}.",
      "a plastic {}.",
      "a photo of the dirty {}.",
      "a jpeg corrupted photo of a {}.",
      "a blurry photo of the {}.",
      "a photo of the {}.",
      "a good photo of the {}.",
      "a rendering of the {}.",
      "a {} in a video game.",
      "a photo of one {}.",
      "a doodle of a {}.",
      "a close-up photo of the {}.",
      "a photo of a {}.",
      "the origami {}.",
      "the {} in a video game.",
      "a sketch of a {}.",
      "a doodle of the {}.",
      "a origami {}.",
      "a low resolution photo of a {}.",
      "the toy {}.",
      "a rendition of the {}.",
      "a photo of the clean {}.",
      "a photo of a large {}.",
      "a rendition of a {}.",
      "a photo of a nice {}.",
      "a photo of a weird {}.",
      "a blurry photo of a {}.",
      "a cartoon {}.",
      "art of a {}.",
      "a sketch of the {}.",
      "a embroidered {}.",
      "a pixelated photo of a {}.",
      "itap of the {}.",
      "a jpeg corrupted photo of the {}.",
      "a good photo of a {}.",
      "a plushie {}.",
      "a photo of the nice {}.",
      "a photo of the small {}.",
      "a photo of the weird {}.",
      "the cartoon {}.",
      "art of the {}.",
      "a drawing of the {}.",
      "a photo of the large {}.",
      "a black and white photo of a {}.",
      "the plushie {}.",
      "a dark photo of a {}.",
      "itap of a {}.",
      "graffiti of the {}.",
      "a toy {}.",
      "itap of my {}.",
      "a photo of a cool {}.",
      "a photo of a small {}.",
      "a tattoo of the {}.",
  };
  return kTemplates;
}

const std::vector<std::string>& Engine::simple_templates() {
  static const std::vector<std::string> kTemplates = {"a photo of a {}."};
  return kTemplates;
}

std::string Engine::apply_template(const std::string& tmpl, const std::string& label) {
  std::string out;
  size_t pos = 0;
  bool found = false;
  for (;;) {
    size_t at = tmpl.find("{}", pos);
    if (at == std::string::npos) break;
    out.append(tmpl, pos, at - pos);
    out += label;
    pos = at + 2;
    found = true;
  }
  CS_CHECK_ARG(found, "template '", tmpl, "' has no '{}' placeholder for the label");
  out.append(tmpl, pos, std::string::npos);
  return out;
}

}  // namespace clipserve
