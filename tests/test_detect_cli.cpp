// `clipserve detect` as a folder-scale job (on the compact OWL-ViT checkpoint in tests/data):
// directories and --files-from as inputs, bad files reported and skipped with a summary and
// exit status 1, results equal to the same files given one by one, --dump names that would
// collide refused.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "owlvit_testing.h"

namespace clipserve::test {
namespace {

namespace fs = std::filesystem;

std::map<std::string, Json> lines_by_file(const std::string& out) {
  std::map<std::string, Json> m;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    if (l.empty() || l[0] != '{') continue;
    Json j = Json::parse(l);
    m[j["file"].get<std::string>()] = j;
  }
  return m;
}

TEST(DetectCli, FoldersAndListsKeepGoingPastBadFiles) {
  const std::string model = compact_model_dir();
  const std::string tmp = temp_dir();
  const std::string dir = tmp + "/detect-photos";
  fs::create_directories(dir + "/a/b");
  const std::string src = data_dir() + "/owlvit/";
  fs::copy_file(src + "n01440764_tench.JPEG", dir + "/a/tench.jpeg");
  fs::copy_file(src + "n03804744_nail.JPEG", dir + "/a/b/nail.jpg");
  std::ofstream(dir + "/a/broken.png") << "\x89PNG\r\n\x1a\n truncated";
  std::ofstream(dir + "/a/readme.txt") << "not an image, not scanned\n";
  const std::string list = tmp + "/detect-list.txt";
  std::ofstream(list) << src + "n01871265_tusker.JPEG\n" << dir + "/missing.jpg\n";

  const std::string cmd = cli_path() + " detect --no-progress --model " + model +
                          " --queries 'a fish,a nail' --threshold 0.0 " + dir + " --files-from " +
                          list;
  auto [rc, out] = run_command(cmd + " 2>" + tmp + "/detect-err.txt");
  EXPECT_EQ(rc, 1) << out;
  const auto got = lines_by_file(out);
  ASSERT_EQ(got.size(), 5u) << out;  // 3 images + 2 failures, the .txt skipped
  EXPECT_TRUE(got.at(dir + "/a/broken.png").contains("error"));
  EXPECT_TRUE(got.at(dir + "/missing.jpg").contains("error"));
  for (const auto& f :
       {dir + "/a/tench.jpeg", dir + "/a/b/nail.jpg", src + "n01871265_tusker.JPEG"}) {
    ASSERT_TRUE(got.at(f).contains("detections")) << f;
    EXPECT_FALSE(got.at(f)["detections"].empty()) << f;
    // The same file alone gives the same detections.
    auto [rc1, one] =
        run_command(cli_path() + " detect --no-progress --model " + model +
                    " --queries 'a fish,a nail' --threshold 0.0 " + f + " 2>/dev/null");
    EXPECT_EQ(rc1, 0);
    EXPECT_EQ(lines_by_file(one).at(f)["detections"], got.at(f)["detections"]) << f;
  }
  std::ifstream err(tmp + "/detect-err.txt");
  const std::string log((std::istreambuf_iterator<char>(err)), {});
  EXPECT_NE(log.find("2 failed"), std::string::npos) << log;
  EXPECT_NE(log.find("broken.png"), std::string::npos) << log;
}

TEST(DetectCli, DumpNamesThatWouldCollideFail) {
  const std::string model = compact_model_dir();
  const std::string tmp = temp_dir();
  const std::string dir = tmp + "/detect-same-name";
  fs::create_directories(dir + "/x");
  fs::create_directories(dir + "/y");
  const std::string src = data_dir() + "/owlvit/n01440764_tench.JPEG";
  fs::copy_file(src, dir + "/x/fish.jpg");
  fs::copy_file(src, dir + "/y/fish.jpg");
  const std::string dump = tmp + "/detect-dump";
  auto [rc, out] = run_command(cli_path() + " detect --no-progress --model " + model +
                               " --queries 'a fish' --dump " + dump + " " + dir + " 2>/dev/null");
  EXPECT_EQ(rc, 1);
  const auto got = lines_by_file(out);
  ASSERT_EQ(got.size(), 2u) << out;
  EXPECT_TRUE(got.at(dir + "/x/fish.jpg").contains("detections"));
  ASSERT_TRUE(got.at(dir + "/y/fish.jpg").contains("error"));
  EXPECT_NE(got.at(dir + "/y/fish.jpg")["error"].get<std::string>().find("same file name"),
            std::string::npos);
  EXPECT_TRUE(fs::exists(dump + "/fish.jpg.logits.npy"));
}

}  // namespace
}  // namespace clipserve::test
