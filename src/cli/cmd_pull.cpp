// `clipserve pull`: downloads a model into the Hugging Face hub cache and checks it loads.
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "core/check.h"
#include "model/hub_names.h"
#include "model/model_dir.h"

namespace clipserve::cli {
namespace {

int run(int argc, char** argv) {
  Args args;
  args.flag("refresh").flag("list").flag("no-verify");
  args.parse(argc, argv);
  if (args.has("list")) {
    for (const auto& t : pretrained_tags()) {
      std::printf("%s/%s\t%s%s\n", t.arch.c_str(), t.tag.c_str(), t.repo_id.c_str(),
                  t.quick_gelu ? "\tquick_gelu" : "");
    }
    return 0;
  }
  CS_CHECK_ARG(args.positional().size() == 1, "give one model name (see clipserve pull --help)");
  const std::string name = args.positional()[0];
  HubOptions opt = hub_options_from_env();
  opt.check_remote = args.has("refresh");
  ResolvedModel r = resolve_model(name, opt);
  if (!args.has("no-verify")) {
    LoadedModel m = load_model_dir(r.dir, r.config);
    std::fprintf(stderr, "%s: %s, %zu tensors, embed_dim %d, %s\n", name.c_str(),
                 model_format_name(detect_model_format(r.dir)), m.weights.size(),
                 m.config.embed_dim, m.config.quick_gelu ? "QuickGELU" : "GELU");
  }
  std::printf("%s\n", r.dir.c_str());
  return 0;
}

const bool registered = register_command({
    "pull",
    "download a model into the Hugging Face cache (ARCH/TAG, hf-hub:ORG/NAME)",
    "usage: clipserve pull NAME [--refresh] [--no-verify]\n"
    "       clipserve pull --list\n\n"
    "Downloads the model's files into the Hugging Face hub cache (HF_HUB_CACHE, else\n"
    "$HF_HOME/hub, else ~/.cache/huggingface/hub), resuming partial downloads and verifying\n"
    "sha256 checksums, then loads the model once to check it. Prints the model directory.\n"
    "NAME: ARCH/TAG as in open_clip (ViT-B-32/laion2b_s34b_b79k, ViT-L-14/openai),\n"
    "      hf-hub:ORG/NAME[@REVISION] (open_clip or transformers CLIPModel repositories),\n"
    "      or a local directory.\n"
    "  --refresh     ask the hub for a newer revision even when the model is cached\n"
    "  --no-verify   do not load the model after downloading\n"
    "  --list        list every known ARCH/TAG with its hub repository\n"
    "Environment: HF_ENDPOINT (mirror), HF_TOKEN (gated/private repos), HF_HUB_OFFLINE=1\n"
    "(cache only), HF_HUB_CACHE / HF_HOME.\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli
