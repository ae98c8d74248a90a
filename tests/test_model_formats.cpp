// Tests of the checkpoint formats: the same weights as open_clip safetensors, open_clip torch
// zip, transformers safetensors and transformers torch zip load to identical WeightMaps; fp16 /
// bf16 are upcast; the transformers config mapping; and the restricted unpickler refuses
// anything but tensor rebuilding.
#include <bit>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "clipserve/error.h"
#include "core/file.h"
#include "core/npy.h"
#include "model/hf_format.h"
#include "model/layout.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/synthetic.h"
#include "model/torch_zip.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;

ModelConfig small_config(bool quick_gelu) {
  ModelConfig c;
  c.name = "small";
  c.embed_dim = 24;
  c.quick_gelu = quick_gelu;
  c.vision = {64, 16, 32, 2, 16, 4.0f};
  c.text = {77, 500, 48, 3, 2, 4.0f};
  c.preprocess.size = 64;
  return c;
}

template <typename Fn>
std::string error_of(Fn&& fn, ErrorCode* code = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (code != nullptr) *code = e.code();
    return e.what();
  }
  return "";
}

void expect_same_weights(const WeightMap& a, const WeightMap& b) {
  ASSERT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) {
    const auto& ta = a.at(name);
    const auto& tb = b.at(name);
    ASSERT_EQ(ta.shape, tb.shape) << name;
    EXPECT_EQ(std::memcmp(ta.data, tb.data, static_cast<size_t>(ta.numel()) * 4), 0) << name;
  }
}

TEST(Formats, AllFourFormatsLoadToIdenticalWeights) {
  for (bool qg : {false, true}) {
    ModelConfig cfg = small_config(qg);
    std::string base = test::temp_dir();
    write_synthetic_model(cfg, 3, base + "/open_clip");
    LoadedModel ref = load_model_dir(base + "/open_clip");
    EXPECT_EQ(detect_model_format(base + "/open_clip"), ModelFormat::kOpenClipSafetensors);
    struct Case {
      const char* to;
      ModelFormat format;
    };
    for (const Case& c :
         {Case{"open_clip_torch", ModelFormat::kOpenClipTorch},
          Case{"hf", ModelFormat::kHfSafetensors}, Case{"hf_torch", ModelFormat::kHfTorch}}) {
      SCOPED_TRACE(c.to);
      std::string out = base + "/" + c.to;
      auto [rc, log] = test::run_command(test::cli_path() + " convert " + base +
                                         "/open_clip --to " + c.to + " --out " + out + " 2>&1");
      ASSERT_EQ(rc, 0) << log;
      EXPECT_EQ(detect_model_format(out), c.format);
      LoadedModel m = load_model_dir(out);
      EXPECT_TRUE(m.config == ref.config);
      expect_same_weights(m.weights, ref.weights);
      // And back to open_clip safetensors: the same bytes as a direct conversion.
      std::string back = out + "_back";
      auto [rc2, log2] = test::run_command(test::cli_path() + " convert " + out +
                                           " --to open_clip --out " + back + " 2>&1");
      ASSERT_EQ(rc2, 0) << log2;
      expect_same_weights(load_model_dir(back).weights, ref.weights);
    }
  }
}

// End to end through `clipserve embed` (when the build has it): the same weights in every
// format give bit-identical image and text embeddings.
TEST(Formats, EveryFormatGivesIdenticalEmbeddings) {
  auto [hrc, help] = test::run_command(test::cli_path() + " --help 2>&1");
  if (help.find("  embed ") == std::string::npos)
    GTEST_SKIP() << "no `clipserve embed` in this build";
  ModelConfig cfg = small_config(true);
  cfg.text.vocab_size = 49408;  // real token ids
  std::string base = test::temp_dir();
  write_synthetic_model(cfg, 5, base + "/open_clip");
  std::vector<float> pixels(3 * 64 * 64);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<float>((i * 37) % 101) / 50.f - 1.f;
  write_npy_f32(base + "/img.npy", pixels, {3, 64, 64});
  std::vector<float> ref;
  for (const char* to : {"open_clip", "open_clip_torch", "hf", "hf_torch"}) {
    SCOPED_TRACE(to);
    std::string dir = base + "/open_clip";
    if (std::string(to) != "open_clip") {
      dir = base + "/" + to;
      auto [rc, log] = test::run_command(test::cli_path() + " convert " + base +
                                         "/open_clip --to " + to + " --out " + dir + " 2>&1");
      ASSERT_EQ(rc, 0) << log;
    }
    std::string out = base + "/" + to + ".npy";
    auto [rc, log] = test::run_command(test::cli_path() + " embed --model " + dir + " --out " +
                                       out + " " + base + "/img.npy 'text:a photo of a cat' 2>&1");
    ASSERT_EQ(rc, 0) << log;
    std::vector<float> e = read_npy(out).to_f32();
    ASSERT_EQ(e.size(), 2u * cfg.embed_dim);
    if (ref.empty()) {
      ref = e;
    } else {
      EXPECT_EQ(e, ref);
    }
  }
}

TEST(Formats, HfLayoutHasSplitQkvAndTransposedProjections) {
  ModelConfig cfg = small_config(false);
  WeightMap w = synthetic_weights(cfg, 1);
  std::vector<std::vector<float>> storage;
  auto hf = open_clip_to_hf(w, cfg, storage);
  std::map<std::string, const TensorToWrite*> by;
  for (const auto& t : hf) by[t.name] = &t;
  const int64_t tw = cfg.text.width;
  const float* in_w = w.at("transformer.resblocks.1.attn.in_proj_weight").data;
  const auto* k = by.at("text_model.encoder.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(k->shape, (std::vector<int64_t>{tw, tw}));
  EXPECT_EQ(std::memcmp(k->data, in_w + tw * tw, static_cast<size_t>(tw * tw) * 4), 0);
  const auto* vp = by.at("visual_projection.weight");
  EXPECT_EQ(vp->shape, (std::vector<int64_t>{cfg.embed_dim, cfg.vision.width}));
  // visual_projection.weight[e][w] == visual.proj[w][e]
  const float* proj = w.at("visual.proj").data;
  EXPECT_EQ(vp->data[2 * cfg.vision.width + 5], proj[5 * cfg.embed_dim + 2]);
  EXPECT_TRUE(by.count("vision_model.pre_layrnorm.weight"));
  EXPECT_EQ(hf.size(), w.size() + 4u * (cfg.vision.layers + cfg.text.layers));
}

TEST(Formats, HalfPrecisionWeightsAreUpcast) {
  ModelConfig cfg = small_config(false);
  WeightMap w = synthetic_weights(cfg, 2);
  // Write a BF16 copy: each value's upper 16 bits.
  nlohmann::ordered_json hj = nlohmann::ordered_json::object();
  std::string data;
  for (const auto& s : expected_tensors(cfg)) {
    const auto& t = w.at(s.name);
    uint64_t begin = data.size();
    for (int64_t i = 0; i < t.numel(); ++i) {
      uint16_t h = static_cast<uint16_t>(std::bit_cast<uint32_t>(t.data[i]) >> 16);
      data.append(reinterpret_cast<const char*>(&h), 2);
    }
    hj[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string header = hj.dump();
  uint64_t n = header.size();
  std::string file(reinterpret_cast<const char*>(&n), 8);
  file += header + data;
  std::string dir = test::temp_dir();
  write_file_atomic(dir + "/open_clip_model.safetensors",
                    {reinterpret_cast<const uint8_t*>(file.data()), file.size()});
  std::string json = model_config_to_json(cfg);
  write_file_atomic(dir + "/open_clip_config.json",
                    {reinterpret_cast<const uint8_t*>(json.data()), json.size()});
  LoadedModel m = load_model_dir(dir);
  for (const auto& name : w.names()) {
    const auto& t = m.weights.at(name);
    ASSERT_FALSE(t.owned.empty()) << name;  // converted, not a view
    for (int64_t i = 0; i < t.numel(); i += 7) {
      uint32_t want = std::bit_cast<uint32_t>(w.at(name).data[i]) & 0xffff0000u;
      ASSERT_EQ(std::bit_cast<uint32_t>(t.data[i]), want) << name << "[" << i << "]";
    }
  }
}

TEST(Formats, HfConfigMappingAndErrors) {
  ModelConfig cfg = small_config(true);
  std::string json = hf_clip_config_json(cfg);
  ModelConfig back = parse_hf_clip_config(json, "config.json", hf_preprocessor_config_json(cfg));
  EXPECT_TRUE(back == cfg);
  // openai/clip-vit-base-patch32 style config: defaults are ViT-B/32 with quick_gelu.
  ModelConfig b32 = parse_hf_clip_config(
      R"({"model_type": "clip", "projection_dim": 512, "text_config": {}, "vision_config": {}})",
      "c.json");
  ModelConfig want = builtin_model_config("ViT-B-32-quickgelu");
  EXPECT_TRUE(b32.vision == want.vision && b32.text == want.text && b32.quick_gelu);
  ErrorCode code{};
  std::string e =
      error_of([] { parse_hf_clip_config(R"({"model_type": "siglip"})", "s.json"); }, &code);
  EXPECT_EQ(code, ErrorCode::kUnsupported);
  EXPECT_NE(e.find("siglip"), std::string::npos) << e;
  e = error_of([] {
    parse_hf_clip_config(
        R"({"text_config": {"hidden_act": "gelu_new"}, "vision_config": {"hidden_act": "gelu_new"}})",
        "a.json");
  });
  EXPECT_NE(e.find("gelu_new"), std::string::npos) << e;
  e = error_of([] {
    parse_hf_clip_config(R"({"text_config": {"hidden_act": "gelu"}, "vision_config": {}})",
                         "m.json");
  });
  EXPECT_NE(e.find("different activations"), std::string::npos) << e;
  e = error_of(
      [] { parse_hf_clip_config(R"({"vision_config": {"layer_norm_eps": 1e-6}})", "e.json"); });
  EXPECT_NE(e.find("layer_norm_eps"), std::string::npos) << e;
  e = error_of(
      [] { parse_hf_clip_config(R"({"text_config": {"num_hidden_layers": -2}})", "n.json"); });
  EXPECT_NE(e.find("text_config.num_hidden_layers"), std::string::npos) << e;
}

TEST(Formats, HfWeightErrorsNameTheTensor) {
  ModelConfig cfg = small_config(false);
  WeightMap w = synthetic_weights(cfg, 4);
  std::vector<std::vector<float>> storage;
  auto hf = open_clip_to_hf(w, cfg, storage);
  std::string dir = test::temp_dir();
  // position_ids (int64 in old transformers checkpoints) are tolerated; missing q_proj is not.
  std::vector<TensorToWrite> missing;
  for (const auto& t : hf)
    if (t.name != "text_model.encoder.layers.1.self_attn.q_proj.weight") missing.push_back(t);
  write_safetensors(dir + "/model.safetensors", missing);
  std::string e =
      error_of([&] { hf_to_open_clip(load_safetensors(dir + "/model.safetensors"), cfg); });
  EXPECT_NE(e.find("text_model.encoder.layers.1.self_attn.q_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find(dir + "/model.safetensors"), std::string::npos) << e;
  auto extra = hf;
  float one = 1;
  extra.push_back({"text_model.surprise", {1}, &one});
  write_safetensors(dir + "/model.safetensors", extra);
  e = error_of([&] { hf_to_open_clip(load_safetensors(dir + "/model.safetensors"), cfg); });
  EXPECT_NE(e.find("text_model.surprise"), std::string::npos) << e;
}

// ------------------------------------------------------------------ the unpickler

// Builds pickles by hand, opcode by opcode (protocol 2 as torch.save writes it).
struct Pickle {
  std::vector<uint8_t> b;
  Pickle() {
    b.push_back(0x80);
    b.push_back(2);
  }
  Pickle& op(uint8_t o) {
    b.push_back(o);
    return *this;
  }
  Pickle& raw(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X');
    for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(s.size() >> (8 * i)));
    return raw(s);
  }
  Pickle& integer(int32_t v) {
    op('J');
    for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(uint32_t(v) >> (8 * i)));
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c').raw(module).op('\n').raw(name);
    return op('\n');
  }
  Pickle& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& key, int numel, int offset, std::vector<int> size,
                 std::vector<int> stride, const std::string& storage = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(')
        .str("storage")
        .global("torch", storage)
        .str(key)
        .str("cpu")
        .integer(numel)
        .op('t')
        .op('Q');
    integer(offset).op('(');
    for (int s : size) integer(s);
    op('t').op('(');
    for (int s : stride) integer(s);
    op('t').op(0x89);
    ordered_dict();
    return op('t').op('R');
  }
};

std::vector<uint8_t> archive(const std::vector<uint8_t>& pkl,
                             std::vector<std::pair<std::string, std::vector<uint8_t>>> extra = {}) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> e = {{"archive/data.pkl", pkl}};
  for (auto& x : extra) e.push_back(std::move(x));
  return make_stored_zip(e);
}

std::vector<uint8_t> floats(std::initializer_list<float> v) {
  std::vector<uint8_t> r(v.size() * 4);
  std::memcpy(r.data(), std::data(v), r.size());
  return r;
}

TEST(Unpickler, ReadsStateDictWrapperPrefixAndStrides) {
  // {"epoch": 3, "state_dict": OrderedDict({"module.w": <2x2 view, offset 1, strides (1, 2)>})}
  Pickle p;
  p.op('}').op('(').str("epoch").integer(3).str("state_dict").ordered_dict().op('(');
  p.str("module.w").tensor("0", 6, 1, {2, 2}, {1, 2});
  p.str("module.ids").tensor("1", 2, 0, {2}, {1}, "LongStorage");
  p.op('u').op('u').op('.');
  std::vector<uint8_t> ids(16, 0);
  auto zip =
      archive(p.b, {{"archive/data/0", floats({0, 1, 2, 3, 4, 5})}, {"archive/data/1", ids}});
  WeightMap m = parse_torch_checkpoint(zip, "wrapped.pt");
  ASSERT_TRUE(m.contains("w"));
  EXPECT_FALSE(m.contains("ids"));  // integer buffers are skipped
  const float* w = m.at("w").data;
  // w[i][j] = storage[1 + i + 2j]
  EXPECT_EQ(std::vector<float>(w, w + 4), (std::vector<float>{1, 3, 2, 4}));
}

TEST(Unpickler, RefusesAnythingButTensorRebuilding) {
  auto refused = [](const std::vector<uint8_t>& pkl, const std::string& why) {
    std::string e = error_of([&] { parse_torch_checkpoint(archive(pkl), "evil.pt"); });
    EXPECT_NE(e.find(why), std::string::npos) << "got: " << e;
    EXPECT_NE(e.find("evil.pt"), std::string::npos) << e;
  };
  // The classic: os.system("...") via GLOBAL + REDUCE.
  Pickle sys;
  sys.global("os", "system").op('(').str("touch /tmp/pwned").op('t').op('R').op('.');
  refused(sys.b, "refusing pickle global 'os.system'");
  // builtins.eval through STACK_GLOBAL.
  Pickle ev;
  ev.str("builtins").str("eval").op(0x93).op('(').str("1").op('t').op('R').op('.');
  refused(ev.b, "refusing pickle global 'builtins.eval'");
  // An allowed global used as a callable it is not.
  Pickle st;
  st.global("torch", "FloatStorage").op(')').op('R').op('.');
  refused(st.b, "refusing to call 'torch.FloatStorage'");
  // Object-building opcodes are not implemented at all: INST, OBJ, NEWOBJ.
  Pickle inst;
  inst.op('(').op('i').raw("posix").op('\n').raw("system").op('\n').op('.');
  refused(inst.b, "opcode 0x69");
  Pickle newobj;
  newobj.global("collections", "OrderedDict").op(')').op(0x81).op('.');
  refused(newobj.b, "opcode 0x81");
  // A list appended to itself (cycle), deep nesting, bad memo index, truncation.
  Pickle cyc;
  cyc.op(']').op('q').op(0).op('h').op(0).op('a').op('.');
  refused(cyc.b, "self-referencing");
  Pickle deep;
  for (int i = 0; i < 100; ++i) deep.op('(');
  deep.op(')');
  for (int i = 0; i < 100; ++i) deep.op('t');
  deep.op('.');
  refused(deep.b, "nesting too deep");
  Pickle memo;
  memo.op('h').op(7).op('.');
  refused(memo.b, "memo index 7");
  Pickle cut;
  cut.op('}').str("abc");
  cut.b.pop_back();
  cut.b.pop_back();
  refused(cut.b, "truncated pickle");
  // Nothing was executed, of course.
  EXPECT_FALSE(fs::exists("/tmp/pwned"));
}

TEST(Unpickler, ValidatesStoragesAndArchives) {
  Pickle big;
  big.ordered_dict().op('(').str("w").tensor("0", 4, 2, {2, 2}, {2, 1}).op('u').op('.');
  std::string e = error_of([&] {
    parse_torch_checkpoint(archive(big.b, {{"archive/data/0", floats({0, 1, 2, 3})}}), "oob.pt");
  });
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("past its storage"), std::string::npos) << e;
  e = error_of([&] { parse_torch_checkpoint(archive(big.b), "nodata.pt"); });
  EXPECT_NE(e.find("data/0 is missing"), std::string::npos) << e;
  Pickle small;
  small.ordered_dict().op('(').str("w").tensor("0", 100, 0, {4}, {1}).op('u').op('.');
  e = error_of([&] {
    parse_torch_checkpoint(archive(small.b, {{"archive/data/0", floats({0, 1, 2, 3})}}),
                           "short.pt");
  });
  EXPECT_NE(e.find("holds 16 bytes"), std::string::npos) << e;
  // Zero strides would let a 4-element storage claim 2^30 elements (found by the fuzzer as a
  // slow input): refused before any allocation.
  Pickle bcast;
  bcast.ordered_dict()
      .op('(')
      .str("w")
      .tensor("0", 4, 0, {1 << 20, 1 << 10}, {0, 0})
      .op('u')
      .op('.');
  e = error_of([&] {
    parse_torch_checkpoint(archive(bcast.b, {{"archive/data/0", floats({0, 1, 2, 3})}}), "b.pt");
  });
  EXPECT_NE(e.find("elements but its storage only 4"), std::string::npos) << e;
  // TorchScript archives (OpenAI's original .pt files) are recognized and refused.
  ErrorCode code{};
  e = error_of(
      [&] {
        parse_torch_checkpoint(archive(small.b, {{"archive/constants.pkl", {0x80, 2, '.'}}}),
                               "jit.pt");
      },
      &code);
  EXPECT_EQ(code, ErrorCode::kUnsupported);
  EXPECT_NE(e.find("TorchScript"), std::string::npos) << e;
  // Every truncation of a real checkpoint is an error, never a crash.
  ModelConfig cfg = small_config(false);
  cfg.vision.layers = 1;
  cfg.text.layers = 1;
  WeightMap w = synthetic_weights(cfg, 0);
  std::vector<TensorToWrite> ts;
  for (const auto& s : expected_tensors(cfg)) ts.push_back({s.name, s.shape, w.at(s.name).data});
  std::string path = test::temp_dir() + "/w.bin";
  write_torch_checkpoint(path, ts);
  auto bytes = read_file_bytes(path);
  expect_same_weights(parse_torch_checkpoint(bytes, "whole"), w);
  WeightMap mapped = load_torch_checkpoint(path);  // from a file: zero-copy views
  expect_same_weights(mapped, w);
  EXPECT_TRUE(mapped.at("visual.proj").owned.empty());
  for (size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 3) {
    EXPECT_THROW(parse_torch_checkpoint(std::span<const uint8_t>(bytes.data(), cut), "cut"), Error)
        << cut;
  }
  std::vector<uint8_t> junk(300, 'P');
  EXPECT_THROW(parse_torch_checkpoint(junk, "junk"), Error);
}

}  // namespace
}  // namespace clipserve
