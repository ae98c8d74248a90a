// GIF decoding (first frame) as Pillow 9.4 does it: mode P with the frame's (local or global)
// colour table, or L when that table is a grey ramp; canvas = logical screen grown to hold
// the frame, filled with the transparency index (or 0) outside it.
#include <gif_lib.h>

#include <cstring>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {

struct MemReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

int read_mem(GifFileType* gif, GifByteType* out, int n) {
  auto* r = static_cast<MemReader*>(gif->UserData);
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max(n, 0)), r->size - r->pos);
  std::memcpy(out, r->data + r->pos, k);
  r->pos += k;
  return static_cast<int>(k);
}

struct GifHandle {
  GifFileType* gif = nullptr;
  ~GifHandle() {
    int err = 0;
    if (gif != nullptr) DGifCloseFile(gif, &err);
  }
};

// Pillow's _is_palette_needed: a table whose entry i is (i, i, i) for all entries is not.
bool palette_needed(const ColorMapObject* map) {
  for (int i = 0; i < map->ColorCount; ++i) {
    const GifColorType& c = map->Colors[i];
    if (c.Red != i || c.Green != i || c.Blue != i) return true;
  }
  return false;
}

}  // namespace

Image decode_gif(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                 const std::string& name) {
  MemReader reader{bytes.data(), bytes.size(), 0};
  int err = 0;
  GifHandle h;
  h.gif = DGifOpen(&reader, read_mem, &err);
  CS_CHECK_ARG(h.gif != nullptr, name, ": corrupt GIF: ", GifErrorString(err));
  GifFileType* gif = h.gif;
  int transparency = -1;
  for (;;) {
    GifRecordType type;
    CS_CHECK_ARG(DGifGetRecordType(gif, &type) == GIF_OK, name,
                 ": corrupt or truncated GIF: ", GifErrorString(gif->Error));
    if (type == TERMINATE_RECORD_TYPE) {
      CS_THROW(kInvalidArgument, name, ": GIF has no image");
    }
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      CS_CHECK_ARG(DGifGetExtension(gif, &code, &block) == GIF_OK, name, ": corrupt GIF");
      if (code == GRAPHICS_EXT_FUNC_CODE && block != nullptr && block[0] >= 4 && (block[1] & 1)) {
        transparency = block[4];
      }
      while (block != nullptr) {
        CS_CHECK_ARG(DGifGetExtensionNext(gif, &block) == GIF_OK, name, ": corrupt GIF");
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    CS_CHECK_ARG(DGifGetImageDesc(gif) == GIF_OK, name, ": corrupt GIF image descriptor");
    const GifImageDesc& d = gif->Image;
    const int64_t x1 = int64_t(d.Left) + d.Width, y1 = int64_t(d.Top) + d.Height;
    const int64_t W = std::max<int64_t>(gif->SWidth, x1), H = std::max<int64_t>(gif->SHeight, y1);
    check_dimensions(W, H, opt, name);
    const ColorMapObject* map = d.ColorMap != nullptr ? d.ColorMap : gif->SColorMap;
    const bool is_p = map != nullptr && palette_needed(map);
    Image img;
    img.allocate(is_p ? Mode::kP : Mode::kL, static_cast<int>(W), static_cast<int>(H));
    img.palette = grey_palette();
    if (is_p) {
      for (int i = 0; i < map->ColorCount && i < 256; ++i) {
        img.palette[3 * i] = map->Colors[i].Red;
        img.palette[3 * i + 1] = map->Colors[i].Green;
        img.palette[3 * i + 2] = map->Colors[i].Blue;
      }
    }
    if (transparency >= 0) std::memset(img.bytes.data(), transparency, img.bytes.size());
    std::vector<GifPixelType> line(static_cast<size_t>(std::max(d.Width, 1)));
    // Rows in stored order; interlaced GIFs store passes 0/8, 4/8, 2/4, 1/2.
    std::vector<int> order;
    order.reserve(d.Height);
    if (d.Interlace) {
      const int starts[4] = {0, 4, 2, 1}, steps[4] = {8, 8, 4, 2};
      for (int p = 0; p < 4; ++p) {
        for (int y = starts[p]; y < d.Height; y += steps[p]) order.push_back(y);
      }
    } else {
      for (int y = 0; y < d.Height; ++y) order.push_back(y);
    }
    for (int y : order) {
      CS_CHECK_ARG(DGifGetLine(gif, line.data(), d.Width) == GIF_OK, name,
                   ": corrupt or truncated GIF image data");
      std::memcpy(img.row(d.Top + y) + d.Left, line.data(), d.Width);
    }
    return img;
  }
}

}  // namespace clipserve::image
