// Folder-scale CLI jobs: directories and file lists as inputs, bad files reported and skipped,
// row names next to the vectors, durable appends, --resume after an interrupt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/npy.h"
#include "engine_testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;
using test::cli_path;
using test::run_command;
using test::tiny_model_dir;

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// `n` images in nested folders (copies of the fixture images, different formats), `bad` of
// them truncated; plus a text file that a directory scan must skip.
struct Folder {
  std::string dir;
  std::set<std::string> good, bad;
};

Folder make_folder(int n, int bad) {
  Folder f;
  f.dir = test::temp_dir() + "/photos";
  std::vector<std::string> sources;
  for (const char* s : {"rgb_420.jpg", "gray.jpg", "palette.png", "gray.png", "lossy.webp",
                        "palette.gif", "bilevel.png", "rgb16.png"}) {
    sources.push_back(test::data_dir() + "/image/" + s);
  }
  for (int i = 0; i < n; ++i) {
    const std::string& src = sources[i % sources.size()];
    const std::string sub = f.dir + "/d" + std::to_string(i % 7) + "/e" + std::to_string(i % 3);
    fs::create_directories(sub);
    char name[32];
    std::snprintf(name, sizeof name, "/img%04d", i);
    const std::string dst = sub + name + fs::path(src).extension().string();
    auto bytes = test::read_bytes(src);
    const bool is_bad = i % (n / bad) == 5 && static_cast<int>(f.bad.size()) < bad;
    if (is_bad) bytes.resize(bytes.size() / 3);
    std::ofstream(dst, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    (is_bad ? f.bad : f.good).insert(dst);
  }
  std::ofstream(f.dir + "/notes.txt") << "not an image\n";
  return f;
}

const Folder& folder() {
  static const Folder f = make_folder(1000, 10);
  return f;
}

TEST(CliJobs, EmbedDirectoryKeepsGoingAndNamesRows) {
  const Folder& f = folder();
  ASSERT_EQ(f.bad.size(), 10u);
  const std::string t = test::temp_dir();
  const std::string out = t + "/emb.npy";
  auto [rc, log] = run_command(cli_path() + " embed --model " + tiny_model_dir() + " --out " + out +
                               " " + f.dir + " 2>&1 >/dev/null");
  EXPECT_EQ(rc, 1) << log;
  const NpyArray a = read_npy(out);
  ASSERT_EQ(a.shape, (std::vector<int64_t>{990, 32}));
  const auto paths = read_lines(t + "/emb.paths.txt");
  ASSERT_EQ(paths.size(), 990u);
  EXPECT_EQ(std::set<std::string>(paths.begin(), paths.end()), f.good);
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
  for (const auto& b : f.bad) EXPECT_NE(log.find(b), std::string::npos) << b << "\n" << log;
  EXPECT_NE(log.find("10 failed"), std::string::npos) << log;

  // Each row is what embedding that file alone gives.
  const std::string one = t + "/one.npy";
  auto [rc1, log1] = run_command(cli_path() + " embed --model " + tiny_model_dir() + " --out " +
                                 one + " " + paths[123] + " 2>&1");
  ASSERT_EQ(rc1, 0) << log1;
  const auto all = a.to_f32(), single = read_npy(one).to_f32();
  for (int k = 0; k < 32; ++k) EXPECT_EQ(all[123 * 32 + k], single[k]) << k;
}

TEST(CliJobs, EmbedResumeAfterKillEncodesOnlyTheRest) {
  const Folder& f = folder();
  const std::string t = test::temp_dir();
  const std::string out = t + "/emb.npy", paths = t + "/emb.paths.txt";
  // Killed (SIGKILL) once some chunks are on disk.
  std::string cmd = cli_path();
  cmd += " embed --no-progress --model " + tiny_model_dir() + " --out " + out + " " + f.dir;
  cmd += " 2>/dev/null & pid=$!; for i in $(seq 1 2000); do [ -f " + paths + " ] && ";
  cmd += "[ $(wc -l < " + paths + ") -ge 128 ] && break; sleep 0.01; done; ";
  cmd += "kill -9 $pid; wait $pid; echo killed";
  auto [rc, log] = run_command(cmd);
  ASSERT_NE(log.find("killed"), std::string::npos) << log;
  size_t before = read_lines(paths).size();
  ASSERT_GE(before, 128u);
  ASSERT_LT(before, 990u) << "the job finished before it was killed: the test needs more images";
  // A torn tail, as a crash in the middle of an append would leave it.
  std::ofstream(out, std::ios::app | std::ios::binary) << std::string(70, '\x7f');
  std::ofstream(paths, std::ios::app) << t << "/photos/partial-na";
  const NpyArray first = read_npy(out);
  before = static_cast<size_t>(first.shape[0]);

  auto [rc2, log2] = run_command(cli_path() + " embed --resume --model " + tiny_model_dir() +
                                 " --out " + out + " " + f.dir + " 2>&1 >/dev/null");
  EXPECT_EQ(rc2, 1) << log2;
  EXPECT_NE(log2.find(std::to_string(990 - before) + " written now"), std::string::npos) << log2;
  EXPECT_NE(log2.find(std::to_string(before) + " already there"), std::string::npos) << log2;
  const NpyArray a = read_npy(out);
  ASSERT_EQ(a.shape, (std::vector<int64_t>{990, 32}));
  const auto names = read_lines(paths);
  ASSERT_EQ(names.size(), 990u);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), f.good);  // no duplicates
  // The rows written before the kill are kept byte for byte.
  EXPECT_TRUE(std::equal(first.bytes.begin(), first.bytes.end(), a.bytes.begin()));
}

TEST(CliJobs, EmbedFormatsAndFileLists) {
  const Folder& f = folder();
  const std::string t = test::temp_dir();
  std::vector<std::string> some(f.good.begin(), f.good.end());
  some.resize(5);
  {
    std::ofstream l(t + "/list.txt");
    for (const auto& p : some) l << p << "\r\n";
    l << "\n" << t << "/missing.jpg\n";
  }
  auto [rc, log] =
      run_command(cli_path() + " embed --format jsonl --model " + tiny_model_dir() + " --out " + t +
                  "/o.jsonl --files-from " + t + "/list.txt " + "'text:a dog' 2>&1");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("missing.jpg"), std::string::npos) << log;
  const auto lines = read_lines(t + "/o.jsonl");
  ASSERT_EQ(lines.size(), 6u);  // the arguments first, then the list
  EXPECT_EQ(nlohmann::json::parse(lines[0])["path"], "text:a dog");
  for (size_t i = 0; i < 5; ++i) {
    const auto j = nlohmann::json::parse(lines[i + 1]);
    EXPECT_EQ(j["path"], some[i]);
    EXPECT_EQ(j["embedding"].size(), 32u);
  }

  auto [rc2, log2] = run_command(cli_path() + " embed --format csv --model " + tiny_model_dir() +
                                 " --out " + t + "/o.csv 'text:a, \"quoted\" dog' 2>&1");
  ASSERT_EQ(rc2, 0) << log2;
  const auto csv = read_lines(t + "/o.csv");
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[0].substr(0, 13), "path,e0,e1,e2");
  EXPECT_EQ(csv[1].substr(0, 25), "\"text:a, \"\"quoted\"\" dog\",");
  // --resume with another model's dimension is refused.
  { std::ofstream(t + "/wrong.jsonl") << "{\"path\": \"x\", \"embedding\": [1, 2]}\n"; }
  auto [rc3, log3] = run_command(cli_path() + " embed --resume --format jsonl --model " +
                                 tiny_model_dir() + " --out " + t + "/wrong.jsonl text:x 2>&1");
  EXPECT_NE(rc3, 0);
  EXPECT_NE(log3.find("embeds into 32"), std::string::npos) << log3;
}

TEST(CliJobs, ClassifyDirectoryReportsFailuresAndCsv) {
  const Folder& f = folder();
  auto [rc, out] =
      run_command(cli_path() + " classify --no-progress --model " + tiny_model_dir() +
                  " --labels dog,cat --labels 'a car' --top 1 " + f.dir + " 2>/dev/null");
  EXPECT_EQ(rc, 1);
  std::istringstream in(out);
  int ok = 0, failed = 0;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("error")) {
      EXPECT_TRUE(f.bad.count(j["file"])) << line;
      ++failed;
    } else {
      EXPECT_TRUE(f.good.count(j["file"])) << line;
      ASSERT_EQ(j["labels"].size(), 1u);  // --top 1, of the 3 accumulated labels
      ++ok;
    }
  }
  EXPECT_EQ(ok, 990);
  EXPECT_EQ(failed, 10);

  const std::string t = test::temp_dir();
  const std::string one = *f.good.begin(), bad = *f.bad.begin();
  auto [rc2, csv] = run_command("printf '%s\\n%s\\n' " + one + " " + bad + " | " + cli_path() +
                                " classify --model " + tiny_model_dir() +
                                " --labels dog,cat --format csv --files-from - 2>/dev/null");
  EXPECT_EQ(rc2, 1);
  std::istringstream c(csv);
  std::vector<std::string> rows;
  for (std::string l; std::getline(c, l);) rows.push_back(l);
  ASSERT_EQ(rows.size(), 4u) << csv;
  EXPECT_EQ(rows[0], "file,rank,label,prob,cosine,error");
  EXPECT_EQ(rows[1].substr(0, one.size() + 3), one + ",1,");
  EXPECT_EQ(rows[2].substr(0, one.size() + 3), one + ",2,");
  EXPECT_EQ(rows[3].substr(0, bad.size() + 5), bad + ",,,,,");
}

}  // namespace
}  // namespace clipserve
