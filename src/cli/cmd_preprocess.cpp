// `clipserve preprocess`: writes open_clip's eval-transform tensor for each image as
// DIR/<file name>.npy (<f4, shape (3, S, S)).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/command.h"
#include "clipserve/image.h"
#include "core/check.h"
#include "core/file.h"
#include "core/npy.h"
#include "model/model_dir.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve preprocess [--size S | --model DIR] --out DIR [options] FILE...\n"
    "\n"
    "Writes DIR/<file name>.npy for each image: float32 (3, S, S), the exact tensor open_clip's\n"
    "eval transform (Pillow 9.4 + torchvision 0.14) produces. A file that fails is reported on\n"
    "stderr, the others are still written, and the exit status is 1.\n"
    "\n"
    "options:\n"
    "  --size S           output size (default 224, or the model's image size)\n"
    "  --model DIR        take size/mean/std from a model (directory or hub name) preprocess_cfg\n"
    "  --mean R,G,B       normalisation mean (default OpenAI's)\n"
    "  --std R,G,B        normalisation std (default OpenAI's)\n"
    "  --out DIR          output directory (created if missing)\n"
    "  --fast             allow small differences for speed (JPEG DCT-domain downscaling)\n"
    "  --exif-transpose   apply EXIF orientation (open_clip/Pillow ignore it by default)\n"
    "  --max-pixels N     decompression-bomb limit (default 178956970)\n"
    "  --reference        use the slow plain reference implementation (same output)\n";

std::array<float, 3> parse_triple(const std::string& s, const char* what) {
  std::array<float, 3> v{};
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    size_t end = s.find(',', pos);
    if ((i < 2) != (end != std::string::npos)) {
      CS_THROW(kInvalidArgument, what, ": expected three comma-separated numbers, got '", s, "'");
    }
    try {
      v[i] = std::stof(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    } catch (const std::exception&) {
      CS_THROW(kInvalidArgument, what, ": bad number in '", s, "'");
    }
    pos = end + 1;
  }
  return v;
}

int run(int argc, char** argv) {
  Args args;
  args.option("size").option("model").option("mean").option("std").option("out").option(
      "max-pixels");
  args.flag("fast").flag("exif-transpose").flag("reference");
  args.parse(argc, argv);
  PreprocessOptions opt;
  if (auto m = args.get("model"))
    opt = PreprocessOptions::from(load_model_config_for(*m).preprocess);
  opt.size = args.get_int("size", opt.size);
  CS_CHECK_ARG(opt.size > 0 && opt.size <= 8192, "--size must be in 1..8192");
  if (auto m = args.get("mean")) opt.mean = parse_triple(*m, "--mean");
  if (auto s = args.get("std")) opt.std = parse_triple(*s, "--std");
  if (auto mp = args.get("max-pixels")) {
    try {
      opt.max_pixels = std::stoull(*mp);
    } catch (const std::exception&) {
      CS_THROW(kInvalidArgument, "--max-pixels: bad number '", *mp, "'");
    }
  }
  opt.fast = args.has("fast");
  opt.apply_exif_orientation = args.has("exif-transpose");
  opt.reference = args.has("reference");
  const auto out_dir = args.get("out");
  CS_CHECK_ARG(out_dir.has_value(), "preprocess: --out DIR is required");
  CS_CHECK_ARG(!args.positional().empty(), "preprocess: no input files");
  std::filesystem::create_directories(*out_dir);
  int failed = 0;
  std::vector<float> tensor(static_cast<size_t>(3) * opt.size * opt.size);
  for (const std::string& path : args.positional()) {
    try {
      const MappedFile file(path);
      preprocess_image(file.bytes(), opt, tensor.data(), path);
      const std::string name = std::filesystem::path(path).filename().string() + ".npy";
      write_npy_f32((std::filesystem::path(*out_dir) / name).string(), tensor,
                    {3, opt.size, opt.size});
    } catch (const Error& e) {
      std::fprintf(stderr, "clipserve preprocess: %s\n", e.what());
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}

const bool registered = register_command(
    {"preprocess", "write open_clip's preprocessed image tensors as .npy", kUsage, run});

}  // namespace

}  // namespace clipserve::cli
