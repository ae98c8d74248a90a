// Tests of src/model I/O: configs, the safetensors reader/writer and its validation, the
// synthetic weight generator (against synthetic-check.json and the shared tiny model), and
// load_model_dir.
#include <openssl/evp.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "clipserve/error.h"
#include "clipserve/model_config.h"
#include "core/file.h"
#include "model/layout.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/synthetic.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Runs `fn`, expects a clipserve::Error whose message contains every string of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts,
                  ErrorCode code = ErrorCode::kInvalidArgument) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one mentioning " << *parts.begin();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
  }
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  std::string path = test::temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A safetensors file from a header text and a data section.
std::string make_st(const std::string& header, const std::string& data) {
  uint64_t n = header.size();
  std::string s(reinterpret_cast<const char*>(&n), 8);
  return s + header + data;
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.name = "tiny";
  c.embed_dim = 32;
  c.vision = {224, 32, 64, 2, 32, 4.0f};
  c.text = {77, 49408, 64, 2, 2, 4.0f};
  return c;
}

// ---------------------------------------------------------------- configs

TEST(ModelConfig, BuiltinsHaveOpenClipValues) {
  auto names = builtin_model_names();
  EXPECT_EQ(names.size(), 7u);
  ModelConfig l14 = builtin_model_config("ViT-L-14");
  EXPECT_EQ(l14.embed_dim, 768);
  EXPECT_FALSE(l14.quick_gelu);
  EXPECT_EQ(l14.vision.image_size, 224);
  EXPECT_EQ(l14.vision.patch_size, 14);
  EXPECT_EQ(l14.vision.width, 1024);
  EXPECT_EQ(l14.vision.layers, 24);
  EXPECT_EQ(l14.vision.heads(), 16);
  EXPECT_EQ(l14.vision.mlp_width(), 4096);
  EXPECT_EQ(l14.text.width, 768);
  EXPECT_EQ(l14.text.heads, 12);
  EXPECT_EQ(l14.text.layers, 12);
  EXPECT_EQ(l14.text.context_length, 77);
  EXPECT_EQ(l14.text.vocab_size, 49408);
  ModelConfig l336 = builtin_model_config("ViT-L-14-336");
  EXPECT_EQ(l336.vision.image_size, 336);
  EXPECT_EQ(l336.vision.tokens(), 577);
  EXPECT_EQ(l336.preprocess.size, 336);
  ModelConfig b32q = builtin_model_config("ViT-B-32-quickgelu");
  EXPECT_TRUE(b32q.quick_gelu);
  EXPECT_EQ(b32q.vision.patch_size, 32);
  EXPECT_EQ(b32q.vision.heads(), 12);
  EXPECT_EQ(b32q.text.width, 512);
  EXPECT_EQ(builtin_model_config("ViT-B-16").vision.tokens(), 197);
  EXPECT_TRUE(builtin_model_config("ViT-B-16-quickgelu").quick_gelu);
  EXPECT_TRUE(builtin_model_config("ViT-L-14-quickgelu").quick_gelu);
  expect_error([] { builtin_model_config("ViT-X-1"); }, {"ViT-X-1", "ViT-B-32"},
               ErrorCode::kNotFound);
}

TEST(ModelConfig, JsonRoundTripForEveryBuiltin) {
  for (const auto& name : builtin_model_names()) {
    ModelConfig c = builtin_model_config(name);
    ModelConfig back = parse_model_config(model_config_to_json(c), name);
    EXPECT_TRUE(back == c) << name;
  }
  ModelConfig odd = tiny_config();
  odd.vision.mlp_ratio = 2.5f;
  odd.text.mlp_ratio = 3.0f;
  odd.preprocess.mean = {0.5f, 0.25f, 0.125f};
  odd.preprocess.interpolation = "bilinear";
  EXPECT_TRUE(parse_model_config(model_config_to_json(odd), "odd") == odd);
}

TEST(ModelConfig, ParsesHubLayoutAndBareModelCfgWithDefaults) {
  // The shape of a hub open_clip_config.json: preprocess_cfg without size.
  std::string hub = R"({"model_cfg": {"embed_dim": 512, "vision_cfg": {"image_size": 224,
      "layers": 12, "width": 768, "patch_size": 32}, "text_cfg": {"context_length": 77,
      "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
      "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}})";
  ModelConfig c = parse_model_config(hub, "hub.json");
  ModelConfig b32 = builtin_model_config("ViT-B-32");
  EXPECT_TRUE(c.vision == b32.vision);
  EXPECT_TRUE(c.text == b32.text);
  EXPECT_EQ(c.preprocess.size, 224);
  EXPECT_EQ(c.preprocess.mean[1], 0.5f);
  EXPECT_EQ(c.preprocess.interpolation, "bicubic");

  // Bare model_cfg: every missing field takes the open_clip default.
  ModelConfig d =
      parse_model_config(R"({"embed_dim": 256, "vision_cfg": {}, "text_cfg": {}})", "bare.json");
  EXPECT_EQ(d.embed_dim, 256);
  EXPECT_EQ(d.vision.patch_size, 16);
  EXPECT_EQ(d.vision.width, 768);
  EXPECT_EQ(d.vision.head_width, 64);
  EXPECT_EQ(d.text.heads, 8);
  EXPECT_EQ(d.preprocess.mean[0], 0.48145466f);

  ModelConfig sq = parse_model_config(
      R"({"embed_dim": 8, "vision_cfg": {"image_size": [64, 64], "patch_size": 8,
          "width": 64, "image_mean": [0.1, 0.2, 0.3]}, "text_cfg": {"width": 64}})",
      "sq.json");
  EXPECT_EQ(sq.vision.image_size, 64);
  EXPECT_EQ(sq.preprocess.size, 64);
  EXPECT_EQ(sq.preprocess.mean[2], 0.3f);
}

TEST(ModelConfig, InvalidValuesNameTheFieldAndFile) {
  auto bad = [](const std::string& json, std::initializer_list<std::string> parts,
                ErrorCode code = ErrorCode::kInvalidArgument) {
    expect_error([&] { parse_model_config(json, "cfg.json"); }, parts, code);
  };
  bad("{", {"cfg.json", "invalid JSON"});
  bad("[1]", {"cfg.json", "object"});
  bad(R"({"vision_cfg": {}, "text_cfg": {}})", {"cfg.json", "embed_dim"});
  bad(R"({"embed_dim": -5, "vision_cfg": {}, "text_cfg": {}})", {"cfg.json", "embed_dim"});
  bad(R"({"embed_dim": "512", "vision_cfg": {}, "text_cfg": {}})", {"embed_dim", "integer"});
  bad(R"({"embed_dim": 512, "text_cfg": {}})", {"vision_cfg", "missing"});
  bad(R"({"embed_dim": 512, "vision_cfg": {"width": 100}, "text_cfg": {}})",
      {"cfg.json", "vision_cfg.width", "head_width"});
  bad(R"({"embed_dim": 512, "vision_cfg": {"layers": 1.5}, "text_cfg": {}})",
      {"vision_cfg.layers"});
  bad(R"({"embed_dim": 512, "vision_cfg": {"patch_size": 300}, "text_cfg": {}})",
      {"vision_cfg.patch_size"});
  bad(R"({"embed_dim": 512, "vision_cfg": {}, "text_cfg": {"heads": 7}})", {"text_cfg.width"});
  bad(R"({"embed_dim": 512, "vision_cfg": {}, "text_cfg": {"mlp_ratio": "x"}})",
      {"text_cfg.mlp_ratio"});
  bad(R"({"embed_dim": 512, "quick_gelu": 1, "vision_cfg": {}, "text_cfg": {}})", {"quick_gelu"});
  bad(R"({"model_cfg": {"embed_dim": 512, "vision_cfg": {}, "text_cfg": {}},
          "preprocess_cfg": {"std": [1, 0, 1]}})",
      {"preprocess_cfg.std"});
  bad(R"({"model_cfg": {"embed_dim": 512, "vision_cfg": {}, "text_cfg": {}},
          "preprocess_cfg": {"resize_mode": "crop"}})",
      {"preprocess_cfg.resize_mode", "shortest"});
  // Options that change the network are refused, never ignored.
  bad(R"({"embed_dim": 512, "vision_cfg": {"timm_model_name": "vit"}, "text_cfg": {}})",
      {"cfg.json", "timm_model_name"}, ErrorCode::kUnsupported);
  bad(R"({"embed_dim": 512, "vision_cfg": {}, "text_cfg": {"hf_model_name": "roberta"}})",
      {"text_cfg.hf_model_name"}, ErrorCode::kUnsupported);
  bad(R"({"embed_dim": 512, "vision_cfg": {"ls_init_value": 0.1}, "text_cfg": {}})",
      {"ls_init_value"}, ErrorCode::kUnsupported);
  bad(R"({"embed_dim": 512, "vision_cfg": {"frobnicate": 1}, "text_cfg": {}})",
      {"vision_cfg.frobnicate", "unknown"}, ErrorCode::kUnsupported);
  // Defaults spelled out are fine.
  EXPECT_NO_THROW(parse_model_config(
      R"({"embed_dim": 512, "vision_cfg": {"ls_init_value": null, "pool_type": "tok"},
          "text_cfg": {"proj_bias": false, "hf_tokenizer_name": "x"}})",
      "ok.json"));
}

TEST(ModelConfig, LoadMissingFileIsNotFound) {
  expect_error([] { load_model_config("/nonexistent/open_clip_config.json"); },
               {"/nonexistent/open_clip_config.json"}, ErrorCode::kNotFound);
}

// ---------------------------------------------------------------- synthetic weights

TEST(Synthetic, MatchesSyntheticCheckJson) {
  Json check = Json::parse(read_file_text(test::data_dir() + "/model_io/synthetic-check.json"));
  ModelConfig cfg = builtin_model_config(check["arch"].get<std::string>());
  ModelConfig from_json = parse_model_config(check["model_cfg"].dump(), "synthetic-check.json");
  EXPECT_TRUE(from_json.vision == cfg.vision && from_json.text == cfg.text);
  uint64_t seed = check["seed"].get<uint64_t>();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& s : expected_tensors(cfg)) shapes[s.name] = s.shape;
  ASSERT_GE(check["tensors"].size(), 10u);
  for (auto it = check["tensors"].begin(); it != check["tensors"].end(); ++it) {
    const std::string name = it.key();
    const Json& t = it.value();
    SCOPED_TRACE(name);
    ASSERT_TRUE(shapes.count(name));
    EXPECT_EQ(shapes[name], t["shape"].get<std::vector<int64_t>>());
    uint64_t key = fnv1a64(name) ^ (seed * 0x9E3779B97F4A7C15ull);
    EXPECT_EQ(key, std::stoull(t["key"].get<std::string>(), nullptr, 16));
    int64_t numel = 1;
    for (auto d : shapes[name]) numel *= d;
    std::vector<float> v(static_cast<size_t>(numel));
    synthetic_fill(name, synthetic_rule(name, shapes[name], cfg), seed, 0, v.size(), v.data());
    for (size_t i = 0; i < t["first4_bits"].size(); ++i) {
      EXPECT_EQ(std::bit_cast<uint32_t>(v[i]),
                std::stoul(t["first4_bits"][i].get<std::string>(), nullptr, 16));
    }
    if (!t["at_12345_bits"].is_null()) {
      EXPECT_EQ(std::bit_cast<uint32_t>(v[12345]),
                std::stoul(t["at_12345_bits"].get<std::string>(), nullptr, 16));
    }
    double sum = 0;
    for (float x : v) sum += x;
    double want = std::stod(t["sum_f64"].get<std::string>());
    EXPECT_NEAR(sum, want, 1e-9 * std::max(1.0, std::fabs(want)));
    EXPECT_EQ(
        test::digest_hex(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * 4),
                         EVP_sha256()),
        t["sha256"].get<std::string>());
  }
  for (const auto& p : check["points"]) {
    std::string name = p["name"];
    ASSERT_TRUE(shapes.count(name));
    float x;
    uint64_t idx = p["index"].get<uint64_t>();
    synthetic_fill(name, synthetic_rule(name, shapes[name], cfg), seed, idx, 1, &x);
    EXPECT_EQ(std::bit_cast<uint32_t>(x), std::stoul(p["bits"].get<std::string>(), nullptr, 16))
        << name;
  }
}

TEST(Synthetic, ChunkedFillEqualsWholeAndSeedsDiffer) {
  const std::string name = "visual.transformer.resblocks.0.mlp.c_fc.weight";
  ModelConfig cfg = tiny_config();
  auto rule = synthetic_rule(name, {256, 64}, cfg);
  std::vector<float> whole(1000), parts(1000), other(1000);
  synthetic_fill(name, rule, 3, 0, 1000, whole.data());
  synthetic_fill(name, rule, 3, 0, 400, parts.data());
  synthetic_fill(name, rule, 3, 400, 600, parts.data() + 400);
  synthetic_fill(name, rule, 4, 0, 1000, other.data());
  EXPECT_EQ(whole, parts);
  EXPECT_NE(whole, other);
  // Uniform on center +- sqrt(3) * std with std = 64^-0.5.
  for (float x : whole) EXPECT_LE(std::fabs(x), std::sqrt(3.0) / 8 + 1e-6);
}

TEST(Synthetic, ThreadCountDoesNotChangeTheWeights) {
  ModelConfig cfg = tiny_config();
  WeightMap a = synthetic_weights(cfg, 7, 1);
  WeightMap b = synthetic_weights(cfg, 7, 3);
  check_weights(a, cfg);
  for (const auto& name : a.names()) {
    const auto& ta = a.at(name);
    const auto& tb = b.at(name);
    ASSERT_EQ(ta.shape, tb.shape);
    EXPECT_EQ(std::memcmp(ta.data, tb.data, ta.numel() * 4), 0) << name;
  }
}

TEST(Synthetic, TinyModelEqualsSharedFixtureBitForBit) {
  CS_REQUIRE_SHARED(shared);
  std::string dir = test::temp_dir() + "/tiny";
  ModelConfig cfg = load_model_config(shared + "/models/tiny/open_clip_config.json");
  write_synthetic_model(cfg, 0, dir);
  auto ours = read_file_bytes(dir + "/open_clip_model.safetensors");
  auto theirs = read_file_bytes(shared + "/models/tiny/open_clip_model.safetensors");
  ASSERT_EQ(ours.size(), theirs.size());
  EXPECT_TRUE(ours == theirs);
  EXPECT_TRUE(load_model_config(dir + "/open_clip_config.json") == cfg);
  // The config we write is byte-identical to open_clip's too.
  EXPECT_EQ(read_file_text(dir + "/open_clip_config.json"),
            read_file_text(shared + "/models/tiny/open_clip_config.json"));
}

TEST(Synthetic, CliWritesALoadableModelDirectory) {
  std::string dir = test::temp_dir() + "/cli";
  std::string cfg_path = test::temp_dir() + "/tiny.json";
  std::string json = model_config_to_json(tiny_config());
  std::ofstream(cfg_path) << json;
  auto [rc, out] = test::run_command(test::cli_path() + " synth-model --config " + cfg_path +
                                     " --seed 5 --out " + dir + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  LoadedModel m = load_model_dir(dir);
  EXPECT_TRUE(m.config == tiny_config());
  WeightMap want = synthetic_weights(tiny_config(), 5);
  for (const auto& name : want.names()) {
    const auto& t = m.weights.at(name);
    EXPECT_EQ(std::memcmp(t.data, want.at(name).data, t.numel() * 4), 0) << name;
  }
  auto [rc2, out2] =
      test::run_command(test::cli_path() + " synth-model --arch nope --out " + dir + " 2>&1");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(out2.find("nope"), std::string::npos) << out2;
  auto [rc3, out3] = test::run_command(test::cli_path() + " synth-model --arch ViT-B-32 2>&1");
  EXPECT_NE(rc3, 0);
  EXPECT_NE(out3.find("--out"), std::string::npos) << out3;
}

// ---------------------------------------------------------------- safetensors

TEST(Safetensors, WriteReadRoundTripIsZeroCopyAndOrdered) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7}, c;
  std::string path = test::temp_dir() + "/rt.safetensors";
  write_safetensors(path,
                    {{"b", {}, b.data()}, {"a", {2, 3}, a.data()}, {"empty", {0, 4}, c.data()}},
                    {{"format", "pt"}});
  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "b");
  EXPECT_EQ(f.header().metadata.size(), 1u);
  EXPECT_EQ(f.header().data_offset % 8, 0u);
  WeightMap m = f.to_weight_map();
  EXPECT_EQ(m.source(), path);
  EXPECT_EQ(m.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(m.at("a").owned.empty());  // zero-copy view into the mapping
  EXPECT_EQ(std::vector<float>(m.at("a").data, m.at("a").data + 6), a);
  EXPECT_EQ(m.at("b").data[0], 7.f);
  EXPECT_EQ(m.at("empty").numel(), 0);
}

TEST(Safetensors, ConvertsF16AndBF16AndSkipsIntegers) {
  // F16: 1.0, -2.0, 65504, smallest subnormal; BF16: 1.0, -0.5; I64 position ids.
  std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff, 0x0001};
  std::vector<uint16_t> bf16 = {0x3f80, 0xbf00};
  std::vector<int64_t> ids = {0, 1};
  std::string data(reinterpret_cast<const char*>(f16.data()), 8);
  data += std::string(reinterpret_cast<const char*>(bf16.data()), 4);
  data += std::string(reinterpret_cast<const char*>(ids.data()), 16);
  std::string header = R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                       R"("g":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
                       R"("ids":{"dtype":"I64","shape":[1,2],"data_offsets":[12,28]}})";
  std::string path = write_bytes("mixed.safetensors", make_st(header, data));
  SafetensorsFile f(path);
  std::vector<std::string> skipped;
  WeightMap m = f.to_weight_map(&skipped);
  EXPECT_EQ(skipped, std::vector<std::string>{"ids"});
  const float* h = m.at("h").data;
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(m.at("g").data[1], -0.5f);
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  // Every half converts like the hardware F16C / numpy would: spot-check monotonic positives.
  for (uint16_t x = 1; x < 0x7c00; ++x) ASSERT_LT(f16_to_f32(x - 1), f16_to_f32(x)) << x;
}

TEST(Safetensors, UnalignedF32IsCopied) {
  // Header length 7 + 8 = 15: the data section starts at an odd address.
  std::vector<float> v = {1.5f, 2.5f};
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 1) header += ' ';
  ASSERT_NE((8 + header.size()) % 4, 0u);
  std::string path = write_bytes(
      "unaligned.safetensors", make_st(header, std::string(reinterpret_cast<char*>(v.data()), 8)));
  WeightMap m = load_safetensors(path);
  EXPECT_FALSE(m.at("x").owned.empty());
  EXPECT_EQ(m.at("x").data[1], 2.5f);
}

struct BadCase {
  const char* what;
  std::string bytes;
  std::vector<std::string> parts;  // the message must contain these
};

TEST(Safetensors, EveryValidationErrorNamesFileAndTensor) {
  std::string four(16, '\0');
  auto ok_header = [](const std::string& entries) { return "{" + entries + "}"; };
  std::string big_len(8, '\0');
  uint64_t huge = uint64_t(1) << 40;
  std::memcpy(big_len.data(), &huge, 8);
  std::vector<BadCase> cases = {
      {"empty file", "", {"shorter than the 8-byte"}},
      {"short length", std::string("\x05\x00\x00", 3), {"shorter than the 8-byte"}},
      {"header over limit", big_len + "{}", {"over the limit"}},
      {"header longer than file", make_st("{}", "").substr(0, 9), {"truncated"}},
      {"not json", make_st("{not json}", ""), {"not valid JSON"}},
      {"not an object", make_st("[1,2]   ", ""), {"does not start with '{'"}},
      {"duplicate key",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
               std::string(8, '\0')),
       {"'w' twice"}},
      {"bad dtype",
       make_st(ok_header(R"("w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]})"), four),
       {"'w'", "unknown dtype"}},
      {"missing dtype",
       make_st(ok_header(R"("w":{"shape":[1],"data_offsets":[0,4]})"), four),
       {"'w'", "dtype"}},
      {"negative dim",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), four),
       {"'w'", "non-negative"}},
      {"float dim",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), four),
       {"'w'", "non-negative integers"}},
      {"shape overflow",
       make_st(
           ok_header(R"("w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})"),
           four),
       {"'w'", "too large"}},
      {"wrong byte length",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), four),
       {"'w'", "needs 12 bytes", "hold 8"}},
      {"offsets out of range",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]})"), four),
       {"'w'", "past the end"}},
      {"begin after end",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]})"), four),
       {"'w'", "end before"}},
      {"negative offset",
       make_st(ok_header(R"("w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), four),
       {"'w'", "data_offsets"}},
      {"overlap",
       make_st(ok_header(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})"),
               four),
       {"'b'", "overlaps tensor 'a'"}},
      {"metadata not strings",
       make_st(ok_header(R"("__metadata__":{"x":1})"), ""),
       {"__metadata__"}},
      {"entry not object", make_st(ok_header(R"("w":[1])"), ""), {"'w'", "object"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string path = write_bytes("bad.safetensors", c.bytes);
    std::vector<std::string> parts = c.parts;
    parts.push_back(path);
    try {
      SafetensorsFile f(path);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      for (const auto& p : parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
    }
  }
}

TEST(Safetensors, EveryTruncationOfARealFileIsRejected) {
  std::string dir = test::temp_dir();
  ModelConfig cfg = tiny_config();
  cfg.vision.layers = 1;
  cfg.text.layers = 1;
  cfg.text.vocab_size = 10;
  write_synthetic_model(cfg, 1, dir);
  auto bytes = read_file_bytes(dir + "/open_clip_model.safetensors");
  // Every cut inside the header and a spread of cuts inside the data: all refused.
  for (size_t cut = 0; cut < bytes.size(); cut += (cut < 4096 ? 1 : 997)) {
    std::span<const uint8_t> s(bytes.data(), cut);
    EXPECT_THROW(parse_safetensors_header(s, "cut"), Error) << cut;
  }
  EXPECT_NO_THROW(parse_safetensors_header(bytes, "whole"));
}

TEST(Safetensors, CheckWeightsReportsMissingWrongShapeAndUnexpected) {
  ModelConfig cfg = tiny_config();
  std::string dir = test::temp_dir();
  write_synthetic_model(cfg, 0, dir);
  const std::string path = dir + "/open_clip_model.safetensors";
  SafetensorsFile f(path);
  std::vector<TensorToWrite> all;
  WeightMap w = f.to_weight_map();
  for (const auto& s : expected_tensors(cfg)) all.push_back({s.name, s.shape, w.at(s.name).data});

  auto write_variant = [&](std::vector<TensorToWrite> ts) {
    std::string p = test::temp_dir() + "/variant.safetensors";
    write_safetensors(p, ts);
    return p;
  };
  {
    auto ts = all;
    ts.erase(ts.begin() + 5);  // visual.proj
    std::string p = write_variant(ts);
    expect_error([&] { check_weights(load_safetensors(p), cfg); }, {p, "'visual.proj'", "missing"});
  }
  {
    auto ts = all;
    ts[1].shape = {32, 64};  // text_projection transposed
    std::string p = write_variant(ts);
    expect_error([&] { check_weights(load_safetensors(p), cfg); },
                 {p, "'text_projection'", "[32, 64]", "[64, 32]"});
  }
  {
    auto ts = all;
    ts.push_back({"visual.extra", {2}, all[0].data});
    std::string p = write_variant(ts);
    expect_error([&] { check_weights(load_safetensors(p), cfg); },
                 {p, "'visual.extra'", "unexpected"});
  }
  // The wrong config for the right file.
  ModelConfig other = cfg;
  other.embed_dim = 48;
  expect_error([&] { check_weights(load_safetensors(path), other); }, {path, "text_projection"});
}

// ---------------------------------------------------------------- model directories

TEST(ModelDir, LoadsAndValidates) {
  std::string dir = test::temp_dir() + "/m";
  write_synthetic_model(tiny_config(), 2, dir);
  LoadedModel m = load_model_dir(dir);
  EXPECT_EQ(m.weights.size(), expected_tensors(tiny_config()).size());
  EXPECT_EQ(m.weights.at("logit_scale").data[0], static_cast<float>(std::log(100.0)));
  expect_error([] { load_model_dir("/nonexistent/model"); }, {"/nonexistent/model"},
               ErrorCode::kNotFound);
  std::string empty = test::temp_dir();
  expect_error([&] { load_model_dir(empty); }, {empty, "open_clip_config.json"});
  // A config that disagrees with the weights is caught at load.
  ModelConfig wrong = tiny_config();
  wrong.text.layers = 3;
  std::string j = model_config_to_json(wrong);
  write_file_atomic(dir + "/open_clip_config.json",
                    {reinterpret_cast<const uint8_t*>(j.data()), j.size()});
  expect_error([&] { load_model_dir(dir); },
               {"open_clip_model.safetensors", "transformer.resblocks.2"});
}

}  // namespace
}  // namespace clipserve
