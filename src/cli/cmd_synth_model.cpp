// `clipserve synth-model`: writes a model directory with synthetic weights (SYNTHETIC.md).
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "clipserve/model_config.h"
#include "core/check.h"
#include "model/owlvit_synthetic.h"
#include "model/synthetic.h"

namespace clipserve::cli {
namespace {

int run(int argc, char** argv) {
  Args args;
  args.option("arch").option("config").option("seed").option("out").option("threads");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.has("arch") != args.has("config"),
               "give exactly one of --arch NAME or --config FILE");
  CS_CHECK_ARG(args.has("out"), "--out DIR is required");
  CS_CHECK_ARG(args.positional().empty(), "unexpected argument '", args.positional().front(), "'");
  std::string seed_text = args.get_or("seed", "0");
  uint64_t seed = 0;
  try {
    size_t pos = 0;
    CS_CHECK_ARG(!seed_text.empty() && seed_text[0] != '-',
                 "--seed must be a non-negative integer");
    seed = std::stoull(seed_text, &pos);
    CS_CHECK_ARG(pos == seed_text.size(), "--seed must be a non-negative integer, got ", seed_text);
  } catch (const std::logic_error&) {
    CS_THROW(kInvalidArgument, "--seed must be a non-negative integer, got ", seed_text);
  }
  if (args.has("arch") && args.get("arch")->find("owlvit-") != std::string::npos) {
    // OWL-ViT detection checkpoints: transformers layout (docs/detect.md).
    const std::string out = *args.get("out");
    write_synthetic_owlvit(owlvit_arch_config(*args.get("arch")), seed, out,
                           args.get_int("threads", 0));
    std::fprintf(stderr, "wrote %s/config.json, preprocessor_config.json, model.safetensors\n",
                 out.c_str());
    return 0;
  }
  ModelConfig cfg = args.has("arch") ? builtin_model_config(*args.get("arch"))
                                     : load_model_config(*args.get("config"));
  std::string out = *args.get("out");
  write_synthetic_model(cfg, seed, out, args.get_int("threads", 0));
  std::fprintf(stderr, "wrote %s/open_clip_config.json and open_clip_model.safetensors\n",
               out.c_str());
  return 0;
}

const bool registered = register_command({
    "synth-model",
    "write a model directory with synthetic weights (SYNTHETIC.md)",
    "usage: clipserve synth-model (--arch NAME | --config FILE) --seed N --out DIR\n"
    "                             [--threads N]\n\n"
    "Writes DIR/open_clip_config.json and DIR/open_clip_model.safetensors with the\n"
    "deterministic synthetic weights of ../shared/fixtures/SYNTHETIC.md (spec v1).\n"
    "  --arch NAME     a built-in architecture (ViT-B-32, ViT-B-32-quickgelu, ViT-B-16,\n"
    "                  ViT-B-16-quickgelu, ViT-L-14, ViT-L-14-quickgelu, ViT-L-14-336), or\n"
    "                  owlvit-base-patch32, owlvit-base-patch16, owlvit-large-patch14: an\n"
    "                  OWL-ViT detection checkpoint in transformers' layout (docs/detect.md)\n"
    "  --config FILE   an open_clip_config.json (model_cfg + preprocess_cfg) or bare model_cfg\n"
    "  --seed N        seed (default 0)\n"
    "  --threads N     generator threads (default: all cores)\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli
