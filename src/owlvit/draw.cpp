// Box and tag drawing for `clipserve detect --draw` (draw.h).
#include "owlvit/draw.h"

#include <png.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/check.h"
#include "image/decode.h"
#include "image/resample.h"

namespace clipserve::owlvit {

namespace {

// 3 x 5 glyphs, rows top to bottom ('#' = ink); lower case is drawn as upper case.
const char* glyph(char c) {
  static const char* const kLetters[26] = {
      ".#.#.#####.##.#", "##.#.###.#.###.", ".###..#..#...##", "##.#.##.##.###.", "####..##.#..###",
      "####..##.#..#..", ".###..#.##.#.##", "#.##.#####.##.#", "###.#..#..#.###", "..#..#..##.#.#.",
      "#.##.###.#.##.#", "#..#..#..#..###", "#.########.##.#", "##.#.##.##.##.#", ".#.#.##.##.#.#.",
      "##.#.###.#..#..", ".#.#.##.###..##", "##.#.###.#.##.#", ".###...#...###.", "###.#..#..#..#.",
      "#.##.##.##.####", "#.##.##.##.#.#.", "#.##.########.#", "#.##.#.#.#.##.#", "#.##.#.#..#..#.",
      "###..#.#.#..###"};
  static const char* const kDigits[10] = {"####.##.##.####", ".#.##..#..#.###", "##...#.#.#..###",
                                          "##...#.#...###.", "#.##.####..#..#", "####..##...###.",
                                          ".###..####.####", "###..#.#..#..#.", "####.#####.####",
                                          "####.####..###."};
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (c >= 'A' && c <= 'Z') return kLetters[c - 'A'];
  if (c >= '0' && c <= '9') return kDigits[c - '0'];
  switch (c) {
    case ' ':
      return "...............";
    case '.':
      return ".............#.";
    case ',':
      return "..........#.#..";
    case '-':
      return "......###......";
    case ':':
      return "....#.....#....";
    default:
      return "##...#.#.....#.";
  }
}

constexpr std::array<std::array<uint8_t, 3>, 10> kColours = {{{230, 25, 75},
                                                              {60, 180, 75},
                                                              {0, 130, 200},
                                                              {245, 130, 48},
                                                              {145, 30, 180},
                                                              {70, 240, 240},
                                                              {240, 50, 230},
                                                              {210, 245, 60},
                                                              {250, 190, 212},
                                                              {255, 225, 25}}};

struct Canvas {
  int w, h;
  std::vector<uint8_t> rgb;
  void fill(int x0, int y0, int x1, int y1, const std::array<uint8_t, 3>& c) {
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, w), y1 = std::min(y1, h);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        std::copy(c.begin(), c.end(), rgb.begin() + (static_cast<long>(y) * w + x) * 3);
  }
};

// Glyph rows are 3 wide: "###" rows concatenated, 5 rows (15 chars) per glyph.
void text(Canvas& cv, int x, int y, const std::string& s, int scale,
          const std::array<uint8_t, 3>& ink) {
  for (char ch : s) {
    const char* g = glyph(ch);
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 3; ++c)
        if (g[r * 3 + c] == '#')
          cv.fill(x + c * scale, y + r * scale, x + (c + 1) * scale, y + (r + 1) * scale, ink);
    x += 4 * scale;
  }
}

}  // namespace

void draw_detections_png(std::span<const uint8_t> image, const std::vector<DrawBox>& boxes,
                         const std::string& path, const std::string& name) {
  image::DecodeOptions dopt;
  const image::Image img = image::decode_image(image, dopt, name);
  Canvas cv{img.width, img.height,
            std::vector<uint8_t>(static_cast<size_t>(img.width) * img.height * 3)};
  image::convert_rgb(img, cv.rgb.data());
  const int line = std::max(2, std::min(cv.w, cv.h) / 250);
  const int scale = std::max(2, std::min(cv.w, cv.h) / 250);
  for (const DrawBox& b : boxes) {
    const auto& col = kColours[static_cast<size_t>(std::abs(b.label_index)) % kColours.size()];
    const int x0 = static_cast<int>(std::floor(b.box[0])),
              y0 = static_cast<int>(std::floor(b.box[1]));
    const int x1 = static_cast<int>(std::ceil(b.box[2])),
              y1 = static_cast<int>(std::ceil(b.box[3]));
    cv.fill(x0, y0, x1, y0 + line, col);
    cv.fill(x0, y1 - line, x1, y1, col);
    cv.fill(x0, y0, x0 + line, y1, col);
    cv.fill(x1 - line, y0, x1, y1, col);
    if (b.text.empty()) continue;
    const int th = 7 * scale, tw = static_cast<int>(b.text.size()) * 4 * scale + 2 * scale;
    const int ty = y0 - th >= 0 ? y0 - th : std::max(y0, 0);
    const int tx = std::clamp(x0, 0, std::max(0, cv.w - tw));
    cv.fill(tx, ty, tx + tw, ty + th, col);
    text(cv, tx + scale, ty + scale, b.text, scale, {0, 0, 0});
  }
  png_image out{};
  out.version = PNG_IMAGE_VERSION;
  out.width = static_cast<png_uint_32>(cv.w);
  out.height = static_cast<png_uint_32>(cv.h);
  out.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&out, path.c_str(), 0, cv.rgb.data(), cv.w * 3, nullptr)) {
    const std::string msg = out.message;
    png_image_free(&out);
    CS_THROW(kIo, path, ": cannot write PNG: ", msg);
  }
}

}  // namespace clipserve::owlvit
