// ftfy's code pages (from ICU's converters, with ftfy's "sloppy" variants) and character
// categories (badness.py's lists, chardata.py's UTF-8 clue classes derived from the code pages).
#include "text/ftfy_data.h"

#include <unicode/ucnv.h>

#include <algorithm>
#include <memory>
#include <string_view>

#include "core/check.h"
#include "text/unicode.h"

namespace clipserve::text::ftfy_detail {

namespace {

ByteCodec make_codec(const char* icu_name, bool sloppy) {
  ByteCodec codec;
  codec.sloppy = sloppy;
  for (int b = 0; b < 256; ++b) {
    codec.decode[b] = static_cast<char32_t>(b);
    codec.defined[b] = true;
  }
  if (icu_name != nullptr) {
    UErrorCode status = U_ZERO_ERROR;
    UConverter* cnv = ucnv_open(icu_name, &status);
    CS_ASSERT(U_SUCCESS(status), "ICU converter ", icu_name, " unavailable");
    ucnv_setToUCallBack(cnv, UCNV_TO_U_CALLBACK_STOP, nullptr, nullptr, nullptr, &status);
    for (int b = 0x80; b < 0x100; ++b) {
      const char in = static_cast<char>(b);
      const char* src = &in;
      UChar out[4];
      UChar* dst = out;
      UErrorCode st = U_ZERO_ERROR;
      ucnv_reset(cnv);
      ucnv_toUnicode(cnv, &dst, out + 4, &src, &in + 1, nullptr, true, &st);
      // ICU's Windows code pages give the C1 control of the same number for the bytes Windows
      // leaves undefined; Python's codecs (and ftfy) treat those bytes as undefined.
      if (U_FAILURE(st) || dst == out || (b < 0xA0 && out[0] == b && sloppy)) {
        codec.decode[b] = static_cast<char32_t>(b);
        codec.defined[b] = false;
      } else {
        codec.decode[b] = out[0];
      }
    }
    ucnv_close(cnv);
  }
  if (sloppy) codec.decode[0x1A] = 0xFFFD;
  for (int b = 0x80; b < 0x100; ++b) codec.encode.emplace(codec.decode[b], static_cast<uint8_t>(b));
  if (sloppy) codec.encode.emplace(0xFFFD, 0x1A);
  return codec;
}

struct CategoryDef {
  uint32_t category;
  std::u32string_view chars;   // listed characters
  std::u32string_view ranges;  // pairs of (first, last)
};

// The character lists are ftfy's (badness.py); ranges are written as pairs.
constexpr CategoryDef kCategoryDefs[] = {
    {kCommon, U"\u00A0\u00AD·´–—―…’", U""},
    {kC1, U"", U"\u0080\u009F"},
    {kBad, U"¦¤¨¬¯¸ƒˆˇ˘˛˜†‡‰⌐◊\uFFFDªº", U""},
    {kLaw, U"¶§", U""},
    {kCurrency, U"¢£¥₧€", U""},
    {kStartPunct, U"¡«¿©΄΅‘‚“„•‹\uF8FF", U""},
    {kEndPunct, U"®»˝”›™", U""},
    {kNumeric, U"²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№", U""},
    {kKaomoji, U"ŐŌŪŲ°", U"ÒÖÙÜòöøü"},
    {kUpperAccented, U"ØÜÝĂĀĄĆČĎĐĘĚĒĖĞĢİĪĶĹĽŁĻŃŇŅŒŘŚŞŠŢŤŮŰŸŹŻŽҐ", U"ÀÑ"},
    {kLowerAccented, U"ßăąāćčďđęěēėğģįīķĺľłļœŕśşšťüźżžґﬁﬂ", U"àñ"},
    {kUpperCommon, U"ÞΆΈΉΊΌΎΏΪΫ", U"ΑΩЁЯ"},
    {kLowerCommon, U"άέήίΰ", U"αωаџ"},
    {kBox, U"│┌┐┘├┤┬┼▀▄█▌▐░▒▓", U"═╬"},
};

// Characters of utf8_continuation that ftfy does not count as "strict" continuation clues
// (spaces, dashes, quotes, bullet, ellipsis can stand for themselves next to mojibake).
constexpr std::u32string_view kNotStrictContinuation = U" –—―‘’‚“”„•…";

FtfyData* build_data() {
  auto* d = new FtfyData;
  d->codecs[kLatin1] = make_codec(nullptr, false);
  d->codecs[kSloppy1252] = make_codec("windows-1252", true);
  d->codecs[kSloppy1251] = make_codec("windows-1251", true);
  d->codecs[kSloppy1250] = make_codec("windows-1250", true);
  d->codecs[kSloppy1253] = make_codec("windows-1253", true);
  d->codecs[kSloppy1254] = make_codec("windows-1254", true);
  d->codecs[kSloppy1257] = make_codec("windows-1257", true);
  d->codecs[kIso8859_2] = make_codec("ISO-8859-2", false);
  d->codecs[kMacRoman] = make_codec("macintosh", false);
  d->codecs[kCp437] = make_codec("ibm-437", false);
  // Python's cp437 decodes 0xE6 as MICRO SIGN where ICU's table has GREEK SMALL LETTER MU.
  {
    ByteCodec& cp437 = d->codecs[kCp437];
    cp437.encode.erase(cp437.decode[0xE6]);
    cp437.decode[0xE6] = 0xB5;
    cp437.encode[0xB5] = 0xE6;
  }

  d->categories.assign(kCategoryTableSize, 0);
  auto mark = [&](char32_t c, uint32_t cat) {
    if (c < kCategoryTableSize) {
      d->categories[c] |= cat;
    } else {
      d->high_categories[c] |= cat;
      d->high_min = std::min(d->high_min, c);
      d->high_max = std::max(d->high_max, c);
    }
  };
  for (const CategoryDef& def : kCategoryDefs) {
    for (char32_t c : def.chars) mark(c, def.category);
    for (size_t i = 0; i + 1 < def.ranges.size(); i += 2) {
      for (char32_t c = def.ranges[i]; c <= def.ranges[i + 1]; ++c) mark(c, def.category);
    }
  }
  // UTF-8 clues: the characters that UTF-8 lead / continuation bytes become when decoded with
  // the Latin-1-like code pages ftfy looks for inside otherwise good text.
  const CodecId clue_codecs[] = {kLatin1,     kSloppy1252, kSloppy1251, kSloppy1250,
                                 kSloppy1253, kSloppy1254, kSloppy1257};
  for (CodecId id : clue_codecs) {
    const ByteCodec& codec = d->codecs[id];
    for (int b = 0x80; b < 0xC0; ++b) {
      if (!codec.defined[b]) continue;
      const char32_t c = codec.decode[b];
      mark(c, kUtf8Cont);
      if (kNotStrictContinuation.find(c) == std::u32string_view::npos) mark(c, kUtf8ContStrict);
    }
    for (int b = 0xC2; b <= 0xDF; ++b) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First2);
    }
    for (int b = 0xE0; b <= 0xEF; ++b) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First3);
    }
    for (int b : {0xF0, 0xF3}) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First4);
    }
  }
  mark(U' ', kUtf8Cont);

  for (char32_t c = 0xFF01; c < 0xFFF0; ++c) {
    std::u32string s(1, c);
    std::u32string n = nfkc(s);
    d->width_map[c - 0xFF01] = n == s ? std::u32string() : n;
  }
  return d;
}

}  // namespace

const FtfyData& data() {
  static const std::unique_ptr<FtfyData> d(build_data());
  return *d;
}

}  // namespace clipserve::text::ftfy_detail
