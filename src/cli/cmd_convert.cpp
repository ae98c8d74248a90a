// `clipserve convert`: rewrites a model in another checkpoint format (same float32 weights).
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/command.h"
#include "core/check.h"
#include "core/file.h"
#include "model/hf_format.h"
#include "model/layout.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/torch_zip.h"

namespace clipserve::cli {
namespace {

void write_text(const std::string& path, const std::string& text) {
  write_file_atomic(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

int run(int argc, char** argv) {
  Args args;
  args.option("to").option("out");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.positional().size() == 1, "give one input model (directory or name)");
  CS_CHECK_ARG(args.has("out"), "--out DIR is required");
  const std::string to = args.get_or("to", "open_clip");
  const std::string out = *args.get("out");
  CS_CHECK_ARG(to == "open_clip" || to == "open_clip_torch" || to == "hf" || to == "hf_torch",
               "--to must be open_clip, open_clip_torch, hf or hf_torch, got '", to, "'");
  LoadedModel m = load_model(args.positional()[0]);
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  CS_CHECK_ARG(!ec, out, ": cannot create directory: ", ec.message());
  if (to == "open_clip" || to == "open_clip_torch") {
    std::vector<TensorToWrite> ts;
    for (const auto& s : expected_tensors(m.config))
      ts.push_back({s.name, s.shape, m.weights.at(s.name).data});
    if (to == "open_clip")
      write_safetensors(out + "/open_clip_model.safetensors", ts, {{"format", "pt"}});
    else
      write_torch_checkpoint(out + "/open_clip_pytorch_model.bin", ts);
    write_text(out + "/open_clip_config.json", model_config_to_json(m.config));
  } else {
    std::vector<std::vector<float>> storage;
    auto ts = open_clip_to_hf(m.weights, m.config, storage);
    if (to == "hf")
      write_safetensors(out + "/model.safetensors", ts, {{"format", "pt"}});
    else
      write_torch_checkpoint(out + "/pytorch_model.bin", ts);
    write_text(out + "/config.json", hf_clip_config_json(m.config));
    write_text(out + "/preprocessor_config.json", hf_preprocessor_config_json(m.config));
  }
  std::fprintf(stderr, "wrote %s (%s)\n", out.c_str(), to.c_str());
  return 0;
}

const bool registered = register_command({
    "convert",
    "rewrite a model as open_clip or transformers safetensors / torch zip",
    "usage: clipserve convert INPUT --to FORMAT --out DIR\n\n"
    "INPUT: a model directory in any supported format, or a model name (as `pull`).\n"
    "FORMAT:\n"
    "  open_clip        open_clip_config.json + open_clip_model.safetensors (default)\n"
    "  open_clip_torch  open_clip_config.json + open_clip_pytorch_model.bin\n"
    "  hf               transformers CLIPModel: config.json + model.safetensors +\n"
    "                   preprocessor_config.json\n"
    "  hf_torch         the same with pytorch_model.bin\n"
    "Weights are written as float32 (fp16/bf16 inputs are upcast).\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli
