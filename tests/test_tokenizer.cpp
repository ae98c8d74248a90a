// Tokenizer tests: open_clip goldens (compact copy in tests/data/tokenizer), each cleaning step on
// hand-made strings, invalid UTF-8, truncation, the BPE cache, concurrency and the CLI.
#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "clipserve/error.h"
#include "clipserve/tokenizer.h"
#include "core/file.h"
#include "testing.h"
#include "text/bpe.h"
#include "text/clean.h"
#include "text/ftfy.h"
#include "text/html_unescape.h"
#include "text/unicode.h"

namespace clipserve {
namespace {

using text::decode_utf8;
using text::encode_utf8;

struct Golden {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Golden> load_goldens(const std::string& jsonl) {
  std::vector<Golden> out;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>()});
  }
  return out;
}

std::string read_gz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return text::gunzip(ss.str());
}

std::string clean(std::string_view s) { return encode_utf8(text::clean_text(decode_utf8(s))); }
std::string ftfy(std::string_view s) { return encode_utf8(text::ftfy_fix_text(decode_utf8(s))); }

std::vector<int32_t> ids(std::string_view s, int context = 77) {
  return Tokenizer::get().encode(s, context).ids;
}

TEST(TokenizerGolden, VisibleSetIdentical) {
  const auto goldens = load_goldens(read_gz(test::data_dir() + "/tokenizer/visible.jsonl.gz"));
  ASSERT_EQ(goldens.size(), 3237u);
  size_t mismatches = 0;
  for (size_t i = 0; i < goldens.size(); ++i) {
    const Tokens t = Tokenizer::get().encode(goldens[i].text);
    if (t.ids != goldens[i].ids) {
      if (++mismatches <= 20) {
        ADD_FAILURE() << "line " << i + 1 << ": " << nlohmann::json(goldens[i].text).dump()
                      << "\n  expected " << nlohmann::json(goldens[i].ids).dump() << "\n  got      "
                      << nlohmann::json(t.ids).dump();
      }
    }
    EXPECT_EQ(t.truncated, goldens[i].ids.size() == 77 && t.ids.size() == 77 &&
                               Tokenizer::get().encode(goldens[i].text, 1000).ids.size() > 77)
        << "line " << i + 1;
  }
  EXPECT_EQ(mismatches, 0u);
}

// ---- each cleaning step, on strings made up here -------------------------------------------

std::string unescape(std::string_view s) {
  return encode_utf8(text::python_html_unescape(decode_utf8(s)));
}

TEST(TokenizerHtml, PythonUnescapeRules) {
  EXPECT_EQ(unescape("&amp"), "&");             // legacy name without ';'
  EXPECT_EQ(unescape("&ampx"), "&x");           // longest legacy prefix
  EXPECT_EQ(unescape("&notit;"), "\u00ACit;");  // "not" is a legacy name
  EXPECT_EQ(unescape("&eacutex"), "\u00E9x");
  EXPECT_EQ(unescape("&#0;"), "\uFFFD");
  EXPECT_EQ(unescape("&#x110000;"), "\uFFFD");
  EXPECT_EQ(unescape("&#xD800;"), "\uFFFD");
  EXPECT_EQ(unescape("&#99999999999999999999;"), "\uFFFD");
  EXPECT_EQ(unescape("&#128;"), "\u20AC");  // C1 references read as windows-1252
  EXPECT_EQ(unescape("&#1;"), "");          // invalid code points vanish
  EXPECT_EQ(unescape("&#65"), "A");
  EXPECT_EQ(unescape("&#13;"), "\r");
  EXPECT_EQ(unescape("&#x;"), "&#x;");
  EXPECT_EQ(unescape("&unknown; & x"), "&unknown; & x");
}

TEST(TokenizerFtfy, HtmlEntities) {
  EXPECT_EQ(ftfy("&lt;tag&gt;"), "<tag>");
  EXPECT_EQ(ftfy("P&EACUTE;REZ"), "P\u00C9REZ");
  EXPECT_EQ(ftfy("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
  EXPECT_EQ(ftfy("&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "\u00F1 \u00D1 \u00D1 &nTILDE;");
  EXPECT_EQ(ftfy("&amp;amp;amp; x"), "& x");  // repeated until nothing changes
  EXPECT_EQ(ftfy("a &amp b"), "a &amp b");    // ftfy needs the ';' (html.unescape does not)
  // A '<' in a line switches ftfy's entity pass off, for that line and all later ones.
  EXPECT_EQ(ftfy("&amp; x\n<b> &amp;\n&amp;"), "& x\n<b> &amp;\n&amp;");
  // The full cleaning still applies html.unescape twice.
  EXPECT_EQ(clean("<b> &amp;amp;amp;"), "<b> &amp;");
  EXPECT_EQ(clean("&amp;amp;amp;"), "&");
}

TEST(TokenizerFtfy, Mojibake) {
  EXPECT_EQ(ftfy("s\u00C3\u00B3"), "s\u00F3");                               // sÃ³
  EXPECT_EQ(ftfy("voil\u00C3 le travail"), "voil\u00E0 le travail");         // 0xA0 -> space
  EXPECT_EQ(ftfy("\u00E2\u0153\u201D No problems"), "\u2714 No problems");   // âœ”
  EXPECT_EQ(ftfy("doesn\u00C3\u00A2\u00E2\u201A\u00AC\u00E2\u201E\u00A2t"),  // double mojibake
            "doesn't");
  EXPECT_EQ(ftfy("\u00E2\u20AC\u0153 like this \u00E2\u20AC\uFFFD"), "\" like this \uFFFD");
  // Text that is fine is left alone.
  EXPECT_EQ(ftfy("na\u00EFve caf\u00E9 \u00C5ngstr\u00F6m"),
            "na\u00EFve caf\u00E9 \u00C5ngstr\u00F6m");
  EXPECT_EQ(ftfy("\u041F\u0440\u0438\u0432\u0435\u0442"), "\u041F\u0440\u0438\u0432\u0435\u0442");
  EXPECT_FALSE(text::ftfy_is_bad(decode_utf8("\u00C5ngstr\u00F6m")));
  EXPECT_TRUE(text::ftfy_is_bad(decode_utf8("s\u00C3\u00B3")));
  // Category members above U+2600 count too: 'ﬂ' is an accented lower-case letter for ftfy, and
  // "ﬂ¢" is MacRoman mojibake of U+07E2.
  EXPECT_TRUE(text::ftfy_is_bad(decode_utf8("\uFB02\u00A2")));
  EXPECT_EQ(ftfy("\uFB02\u00A2"), "\u07E2");
}

TEST(TokenizerFtfy, CharacterFixes) {
  EXPECT_EQ(ftfy("\u0093quoted\u0094 \u0085"), "\"quoted\" \u2026");         // C1 as windows-1252
  EXPECT_EQ(ftfy("\uFB02u\uFB03e\uFB06"), "fluffiest");                      // ligatures
  EXPECT_EQ(ftfy("\u0149"), "'n");                                           // ŉ -> ʼn -> 'n
  EXPECT_EQ(ftfy("\uFF2C\uFF2F\uFF35\uFF24\u3000\uFF2E\uFF2F"), "LOUD NO");  // full width
  EXPECT_EQ(ftfy("\uFF35\uFF80\uFF70\uFF9D"), "U\u30BF\u30FC\u30F3");        // half width
  EXPECT_EQ(ftfy("\u201Chere\u2019s\u201D \u02BC"), "\"here's\" '");         // curly quotes
  EXPECT_EQ(ftfy("a\r\nb\rc\u2028d\u2029e"), "a\nb\nc\nd\ne");               // line breaks
  EXPECT_EQ(ftfy("\x1b[36;44mblue\x1b[0m"), "blue");                         // ANSI escapes
  EXPECT_EQ(ftfy("a\x01\x0b\x1c\x7f\uFEFF\u206A\uFFFCb\tc"), "ab\tc");       // control chars
  EXPECT_EQ(ftfy("e\u0301 \u212B"), "\u00E9 \u00C5");                        // NFC
}

TEST(TokenizerClean, WhitespaceAndLowerCase) {
  // Python's str.split(): U+001C..U+001F, NBSP, U+3000 ... separate words; ZWSP does not.
  EXPECT_EQ(encode_utf8(text::collapse_whitespace(
                decode_utf8("\x1c a\u00A0b\u200Bc\u3000d\u2028e\u0085f "))),
            "a b\u200Bc d e f");
  EXPECT_EQ(clean("  Hello\t\tWORLD \n"), "hello world");
  EXPECT_EQ(encode_utf8(text::py_lower(decode_utf8("\u0130"))), "i\u0307");
  EXPECT_EQ(
      encode_utf8(text::py_lower(decode_utf8("\u039F\u0394\u03A5\u03A3\u03A3\u0395\u03A5\u03A3"))),
      "\u03BF\u03B4\u03C5\u03C3\u03C3\u03B5\u03C5\u03C2");  // final sigma
  EXPECT_EQ(encode_utf8(text::py_lower(decode_utf8("A\u03A3 A\u03A3b \u03A3"))),
            "a\u03C2 a\u03C3b \u03C3");
  EXPECT_EQ(encode_utf8(text::py_lower(decode_utf8("\u1E9E\u01C5"))), "\u00DF\u01C6");
  EXPECT_EQ(clean("a\u0085b"), "a\u2026b");  // NEL is an ellipsis for ftfy, not a line break
}

// ---- word regex and BPE ------------------------------------------------------------------------

std::vector<int32_t> wrap(std::initializer_list<std::string_view> words) {
  std::vector<int32_t> out{Tokenizer::kStartToken};
  for (std::string_view w : words) text::Bpe::get().encode_word_uncached(w, out);
  out.push_back(Tokenizer::kEndToken);
  return out;
}

TEST(TokenizerRegex, PreTokens) {
  EXPECT_EQ(ids("a photo of a dog."), wrap({"a", "photo", "of", "a", "dog", "."}));
  EXPECT_EQ(ids("It's"), wrap({"it", "'s"}));
  EXPECT_EQ(ids("THEY'LL"), wrap({"they", "'ll"}));
  EXPECT_EQ(ids("''s"), wrap({"''", "s"}));
  EXPECT_EQ(ids("o'clock"), wrap({"o", "'", "clock"}));
  EXPECT_EQ(ids("2024"), wrap({"2", "0", "2", "4"}));
  EXPECT_EQ(ids("!?<a>"), wrap({"!?<", "a", ">"}));
  EXPECT_EQ(ids("caf\u00E9s"), wrap({"caf\u00E9s"}));
  EXPECT_EQ(ids("\u0915\u093F"), wrap({"\u0915", "\u093F"}));  // a mark ends a letter run
  EXPECT_EQ(ids("\u0663\u00B2"), wrap({"\u0663", "\u00B2"}));  // \p{N}: one per token
  EXPECT_EQ(ids("x\u200By"), wrap({"x", "\u200B", "y"}));      // ZWSP is punctuation here
  // The regex is case-insensitive: 'ſ (long s) is the contraction 's.
  EXPECT_EQ(ids("'\u017F"), wrap({"'\u017F"}));
  // U+0345 folds to a letter, so under IGNORECASE no alternative matches it: it is dropped.
  EXPECT_EQ(ids("a\u0345b"), wrap({"a", "b"}));
}

TEST(TokenizerRegex, SpecialTokensInText) {
  const int32_t sot = Tokenizer::kStartToken, eot = Tokenizer::kEndToken;
  // "a", <end_of_text> as id 49407, "b"
  const std::vector<int32_t> a = wrap({"a"}), b = wrap({"b"});
  std::vector<int32_t> expected(a.begin(), a.end() - 1);
  expected.push_back(eot);
  expected.insert(expected.end(), b.begin() + 1, b.end());
  EXPECT_EQ(ids("a<end_of_text>b"), expected);
  EXPECT_EQ(ids("a &lt;END_OF_TEXT&gt; b"), expected);
  EXPECT_EQ(ids("<start_of_text>")[1], sot);
  EXPECT_EQ(ids("<|endoftext|>"), wrap({"<|", "endoftext", "|>"}));
}

TEST(TokenizerBpe, CacheMatchesUncached) {
  const auto& bpe = text::Bpe::get();
  for (std::string w : {"hello", "photograph", "x", "\xc3\xa9t\xc3\xa9", "!!!!!!", "aaaaaaaaaaaa",
                        "supercalifragilisticexpialidocious", "\xe4\xb8\xad\xe6\x96\x87"}) {
    std::vector<int32_t> a, b, c;
    bpe.encode_word_uncached(w, a);
    bpe.encode_word(w, b);  // fills the cache
    bpe.encode_word(w, c);  // reads it
    EXPECT_EQ(a, b) << w;
    EXPECT_EQ(a, c) << w;
    std::string joined;
    for (int32_t id : a) joined += bpe.token(id);
    EXPECT_TRUE(joined.ends_with("</w>")) << w;
  }
  std::vector<int32_t> one;
  bpe.encode_word_uncached("a", one);
  EXPECT_EQ(one, std::vector<int32_t>{320});  // "a</w>"
}

// ---- truncation, errors, threads, CLI
// ------------------------------------------------------------

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(TokenizerTruncation, ContextLength) {
  const auto& tok = Tokenizer::get();
  Tokens fits = tok.encode(repeat("a ", 75));
  EXPECT_EQ(fits.ids.size(), 77u);
  EXPECT_FALSE(fits.truncated);
  Tokens over = tok.encode(repeat("a ", 76));
  EXPECT_EQ(over.ids.size(), 77u);
  EXPECT_TRUE(over.truncated);
  EXPECT_EQ(over.ids.back(), Tokenizer::kEndToken);
  EXPECT_EQ(over.ids[75], 320);
  Tokens tiny = tok.encode("a b", 2);
  EXPECT_EQ(tiny.ids, (std::vector<int32_t>{Tokenizer::kStartToken, Tokenizer::kEndToken}));
  EXPECT_TRUE(tiny.truncated);
  Tokens empty = tok.encode("", 2);
  EXPECT_EQ(empty.ids.size(), 2u);
  EXPECT_FALSE(empty.truncated);
  EXPECT_THROW(tok.encode("a", 1), Error);
}

TEST(TokenizerErrors, InvalidUtf8NamesOffset) {
  const auto& tok = Tokenizer::get();
  for (auto [bytes, offset] : std::vector<std::pair<std::string, int>>{{"abc\xff", 3},
                                                                       {"\xc0\xaf", 0},
                                                                       {"ok \xed\xa0\x80", 3},
                                                                       {"ab\xe2\x82", 2},
                                                                       {"\xf4\x90\x80\x80", 0},
                                                                       {"\xc3\xa9\x80", 2}}) {
    try {
      tok.encode(bytes);
      ADD_FAILURE() << "no error for offset " << offset;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(offset)),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(tok.encode("\xf0\x9f\x98\x80 \xe2\x82\xac"));
}

TEST(TokenizerThreads, ConcurrentEncodeMatchesSerial) {
  const auto goldens = load_goldens(read_gz(test::data_dir() + "/tokenizer/visible.jsonl.gz"));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < goldens.size() * 2; i += 3) {
        const Golden& g = goldens[i % goldens.size()];
        if (Tokenizer::get().encode(g.text).ids != g.ids) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerCli, JsonlInOut) {
  const std::string dir = test::temp_dir();
  {
    std::ofstream f(dir + "/in.jsonl");
    f << "{\"text\": \"a photo of a dog.\"}\n\n{\"text\": 3}\n"
      << "{\"text\": \"" << repeat("a ", 80) << "\"}\n";
  }
  auto [rc, out] =
      test::run_command(test::cli_path() + " tokenize < " + dir + "/in.jsonl 2>/dev/null");
  EXPECT_EQ(rc, 1);  // one bad line
  std::istringstream lines(out);
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  EXPECT_EQ(l1, "{\"ids\":[49406,320,1125,539,320,1929,269,49407],\"truncated\":false}");
  const auto err = nlohmann::json::parse(l2);
  EXPECT_EQ(err.at("line").get<int>(), 3);
  const auto j3 = nlohmann::json::parse(l3);
  EXPECT_EQ(j3.at("ids").size(), 77u);
  EXPECT_TRUE(j3.at("truncated").get<bool>());
  auto [rc2, out2] = test::run_command("echo '{\"text\": \"a b c\"}' | " + test::cli_path() +
                                       " tokenize --context-length 3");
  EXPECT_EQ(rc2, 0);
  EXPECT_EQ(out2, "{\"ids\":[49406,320,49407],\"truncated\":true}\n");
}

TEST(TokenizerGolden, SharedVisibleSet) {
  CS_REQUIRE_SHARED(shared);
  std::ifstream f(shared + "/golden/tokenizer/visible.jsonl", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  size_t mismatches = 0, n = 0;
  for (const auto& g : load_goldens(ss.str())) {
    ++n;
    mismatches += Tokenizer::get().encode(g.text).ids != g.ids;
  }
  EXPECT_GT(n, 0u);
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace clipserve
