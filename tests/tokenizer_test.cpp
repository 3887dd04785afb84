// Tokenizers against the HF reference fixtures (tests/data/tokenizers, copied from the
// public fixture set; see tests/data/tokenizers/README.md): ids with and without special
// tokens, token strings, character offsets, and decode with and without skipping specials.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "core/error.h"
#include "text/regex.h"
#include "text/sentencepiece.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kData = fs::path(LUMEN_TEST_DATA) / "tokenizers";

std::string gunzip(const fs::path& path) {
  gzFile f = gzopen(path.string().c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path.string());
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  if (n < 0) throw std::runtime_error("bad gzip data in " + path.string());
  return out;
}

// A scratch directory holding decompressed copies of test data files.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("lumen_tok_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

  // Copies `src` (decompressing *.gz) into this directory.
  void add(const fs::path& src) {
    const bool gz = src.extension() == ".gz";
    const fs::path dst = path_ / (gz ? src.stem() : src.filename());
    std::ofstream out(dst, std::ios::binary);
    if (gz) {
      const std::string data = gunzip(src);
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
    } else {
      std::ifstream in(src, std::ios::binary);
      out << in.rdbuf();
    }
  }

 private:
  fs::path path_;
};

json load_cases(const std::string& name) { return json::parse(gunzip(kData / name / "cases.json.gz")); }

// A directory with every file of `dir` (decompressed).
void add_all(TempDir& tmp, const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "cases.json.gz") tmp.add(e.path());
}

// Compares every fixture case; returns the number of failing cases (details via ADD_FAILURE).
int check_cases(const Tokenizer& tok, const json& cases, const std::string& label) {
  int failures = 0;
  for (const json& c : cases.at("cases")) {
    const std::string text = c.at("text");
    const std::string where = label + " text=" + json(text).dump();
    const Encoding with = tok.encode(text, true);
    const Encoding without = tok.encode(text, false);
    const std::vector<int64_t> ids_with = c.at("ids_with_special");
    bool ok = true;
    auto expect = [&](bool cond, const std::string& what, const std::string& exp, const std::string& got) {
      if (cond) return;
      ok = false;
      ADD_FAILURE() << where << ": " << what << "\n  expected " << exp << "\n  got      " << got;
    };
    expect(with.ids == ids_with, "ids_with_special", json(ids_with).dump(), json(with.ids).dump());
    expect(without.ids == c.at("ids_no_special").get<std::vector<int64_t>>(), "ids_no_special",
           c.at("ids_no_special").dump(), json(without.ids).dump());
    expect(with.tokens == c.at("tokens_with_special").get<std::vector<std::string>>(), "tokens_with_special",
           c.at("tokens_with_special").dump(), json(with.tokens).dump());
    expect(without.tokens == c.at("tokens_no_special").get<std::vector<std::string>>(), "tokens_no_special",
           c.at("tokens_no_special").dump(), json(without.tokens).dump());
    if (c.contains("offsets_no_special")) {
      std::vector<std::pair<size_t, size_t>> offsets;
      for (const json& o : c.at("offsets_no_special")) offsets.emplace_back(o.at(0), o.at(1));
      expect(without.offsets == offsets, "offsets_no_special", c.at("offsets_no_special").dump(),
             json(without.offsets).dump());
    }
    const std::string dec_with = tok.decode(ids_with, false);
    const std::string dec_skip = tok.decode(ids_with, true);
    expect(dec_with == c.at("decode_with_special").get<std::string>(), "decode_with_special",
           c.at("decode_with_special").dump(), json(dec_with).dump());
    expect(dec_skip == c.at("decode_skip_special").get<std::string>(), "decode_skip_special",
           c.at("decode_skip_special").dump(), json(dec_skip).dump());
    failures += !ok;
  }
  return failures;
}

struct FixtureForm {
  std::string name;    // fixture directory under tests/data/tokenizers
  std::string subdir;  // "" or "hf_saved"
  bool from_dir;       // transformers semantics (from_dir) or tokenizers (from_file)
};

class TokenizerFixture : public ::testing::TestWithParam<FixtureForm> {};

TEST_P(TokenizerFixture, MatchesReference) {
  const FixtureForm& f = GetParam();
  TempDir tmp;
  const fs::path src = f.subdir.empty() ? kData / f.name : kData / f.name / f.subdir;
  add_all(tmp, src);
  const Tokenizer tok = f.from_dir ? Tokenizer::from_dir(tmp.path().string())
                                   : Tokenizer::from_file((tmp.path() / "tokenizer.json").string());
  const json cases = load_cases(f.name);
  ASSERT_GT(cases.at("cases").size(), 0u);
  EXPECT_EQ(check_cases(tok, cases, f.name + "/" + f.subdir), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, TokenizerFixture,
    ::testing::Values(FixtureForm{"clip", "", true},         // vocab.json + merges.txt
                      FixtureForm{"clip", "hf_saved", true},  // tokenizer.json + tokenizer_config.json
                      FixtureForm{"bert", "", true},          // vocab.txt
                      FixtureForm{"bert", "hf_saved", true}, FixtureForm{"gpt2", "", true},
                      FixtureForm{"gpt2", "hf_saved", true}, FixtureForm{"llama2", "", false},
                      FixtureForm{"llama3", "", false}, FixtureForm{"qwen", "", false}),
    [](const ::testing::TestParamInfo<FixtureForm>& info) {
      return info.param.name + (info.param.subdir.empty() ? "" : "_" + info.param.subdir) +
             (info.param.from_dir ? "_dir" : "_file");
    });

class ClipTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_.add(kData / "clip" / "vocab.json.gz");
    tmp_.add(kData / "clip" / "merges.txt.gz");
    tok_ = std::make_unique<Tokenizer>(Tokenizer::from_dir(tmp_.path().string()));
    cases_ = load_cases("clip");
  }
  TempDir tmp_;
  std::unique_ptr<Tokenizer> tok_;
  json cases_;
};

TEST_F(ClipTokenizer, SpecialTokens) {
  EXPECT_EQ(tok_->tokenizer_class(), "CLIPTokenizer");
  EXPECT_EQ(tok_->bos_id(), tok_->token_to_id("<|startoftext|>"));
  EXPECT_EQ(tok_->eos_id(), tok_->token_to_id("<|endoftext|>"));
  EXPECT_EQ(tok_->pad_id(), tok_->eos_id());
  // Every case with specials starts with BOS and ends with EOS.
  for (const json& c : cases_.at("cases")) {
    const std::vector<int64_t> ids = c.at("ids_with_special");
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids.front(), *tok_->bos_id());
    EXPECT_EQ(ids.back(), *tok_->eos_id());
  }
  for (const json& c : cases_.at("cases"))
    for (size_t i = 0; i < c.at("ids_no_special").size(); ++i)
      EXPECT_EQ(tok_->id_to_token(c.at("ids_no_special")[i].get<int64_t>()),
                c.at("tokens_no_special")[i].get<std::string>());
}

TEST_F(ClipTokenizer, BatchPadsAndMasks) {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> expected;
  for (const json& c : cases_.at("cases")) {
    texts.push_back(c.at("text"));
    expected.push_back(c.at("ids_with_special"));
  }
  const BatchEncoding b = tok_->encode_batch(texts, true, 0);
  size_t longest = 0;
  for (const auto& e : expected) longest = std::max(longest, e.size());
  ASSERT_EQ(b.batch, static_cast<int64_t>(texts.size()));
  ASSERT_EQ(b.length, static_cast<int64_t>(longest));
  for (size_t r = 0; r < texts.size(); ++r) {
    for (size_t i = 0; i < longest; ++i) {
      const int64_t id = b.ids[r * longest + i], mask = b.attention_mask[r * longest + i];
      if (i < expected[r].size()) {
        EXPECT_EQ(id, expected[r][i]);
        EXPECT_EQ(mask, 1);
      } else {
        EXPECT_EQ(id, *tok_->pad_id());
        EXPECT_EQ(mask, 0);
      }
    }
  }
}

TEST_F(ClipTokenizer, BatchTruncatesKeepingSpecials) {
  // Truncation to L keeps BOS, the first L-2 text tokens and EOS (transformers, truncation=True).
  const size_t L = 8;
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> expected;
  for (const json& c : cases_.at("cases")) {
    std::vector<int64_t> ids = c.at("ids_no_special");
    if (ids.size() + 2 <= L) continue;
    ids.resize(L - 2);
    ids.insert(ids.begin(), *tok_->bos_id());
    ids.push_back(*tok_->eos_id());
    texts.push_back(c.at("text"));
    expected.push_back(ids);
  }
  ASSERT_FALSE(texts.empty());
  const BatchEncoding b = tok_->encode_batch(texts, true, L);
  ASSERT_EQ(b.length, static_cast<int64_t>(L));
  for (size_t r = 0; r < texts.size(); ++r) {
    EXPECT_EQ(std::vector<int64_t>(b.ids.begin() + static_cast<ptrdiff_t>(r * L), b.ids.begin() + static_cast<ptrdiff_t>((r + 1) * L)),
              expected[r]);
    EXPECT_EQ(std::count(b.attention_mask.begin() + static_cast<ptrdiff_t>(r * L),
                         b.attention_mask.begin() + static_cast<ptrdiff_t>((r + 1) * L), 1),
              static_cast<ptrdiff_t>(L));
  }
}

TEST_F(ClipTokenizer, InvalidUtf8IsReplaced) {
  // Bytes that are not UTF-8 behave as U+FFFD, one per maximal invalid subsequence.
  const std::string bad = std::string("caf") + "\xC3" + " x\xFF\xFEy \xE2\x82" + "z \xF0\x9F\x98";
  const std::string replaced = std::string("caf") + "\xEF\xBF\xBD" + " x\xEF\xBF\xBD\xEF\xBF\xBDy \xEF\xBF\xBDz \xEF\xBF\xBD";
  EXPECT_EQ(text::sanitize_utf8(bad), replaced);
  EXPECT_EQ(tok_->encode(bad, true).ids, tok_->encode(replaced, true).ids);
  EXPECT_NO_THROW(tok_->encode(std::string("\x80\x80\xC0\xAF\xED\xA0\x80", 7), true));
}

// The SentencePiece Unigram test model, converted to a tokenizer.json by
// tests/data/tokenizers/sentencepiece/spm_to_tokenizer_json.py (Precompiled charsmap,
// space cleanup, Metaspace, Unigram), against the sentencepiece library's own outputs.
// Two behaviours of HF's pipeline differ from the library by design and are left out:
// grapheme clusters of 6+ bytes are looked up in the charsmap character by character
// (tokenizers' Precompiled), and a literal U+2581 in the input is not whitespace to Metaspace.
TEST(TokenizerSentencePiece, UnigramWithPrecompiledCharsmap) {
  const Tokenizer tok = Tokenizer::from_json_string(gunzip(kData / "sentencepiece" / "tokenizer.json.gz"), "spm");
  const json cases = load_cases("sentencepiece");
  const int64_t unk = cases.at("unk_id");
  int checked = 0;
  for (const json& c : cases.at("cases")) {
    const std::string text = c.at("text");
    bool hf_differs = text.find("\xE2\x96\x81") != std::string::npos;
    for (const auto& [b, e] : text::grapheme_clusters(text)) {
      if (e - b < 6) continue;
      for (char32_t ch : text::decode_utf8(std::string_view(text).substr(b, e - b))) hf_differs |= text::is_mark(ch);
    }
    if (hf_differs) continue;
    ++checked;
    const std::vector<int64_t> ids = c.at("ids_no_special");
    const Encoding without = tok.encode(text, false);
    EXPECT_EQ(without.ids, ids) << json(text).dump();
    EXPECT_EQ(tok.encode(text, true).ids, c.at("ids_with_special").get<std::vector<int64_t>>()) << json(text).dump();
    for (size_t i = 0; i < ids.size() && i < without.tokens.size(); ++i) {
      if (ids[i] != unk) {
        EXPECT_EQ(without.tokens[i], c.at("tokens_no_special")[i].get<std::string>()) << json(text).dump();
      }
    }
    if (std::find(ids.begin(), ids.end(), unk) == ids.end()) {
      EXPECT_EQ(tok.decode(ids), c.at("decode_no_special").get<std::string>()) << json(text).dump();
    }
  }
  EXPECT_GE(checked, static_cast<int>(cases.at("cases").size() * 9 / 10));  // only a few are left out
}

// SentencePiece .model files against the sentencepiece library's outputs (FORMAT.md
// section 7): ids without and with bos, id_to_piece, the pieces encode(out_type=str) gives
// (input text for fused unknown runs), decode, plus offsets that cover the input.
int check_spm_cases(const Tokenizer& tok, const text::SentencePieceModel& spm, const json& cases) {
  int failures = 0;
  for (const json& c : cases.at("cases")) {
    const std::string text = c.at("text");
    const std::string where = cases.value("name", "?") + " text=" + json(text).dump();
    bool ok = true;
    auto expect = [&](bool cond, const std::string& what, const std::string& exp, const std::string& got) {
      if (cond) return;
      ok = false;
      ADD_FAILURE() << where << ": " << what << "\n  expected " << exp << "\n  got      " << got;
    };
    const std::vector<int64_t> ids = c.at("ids_no_special");
    const Encoding without = tok.encode(text, false);
    const Encoding with = tok.encode(text, true);
    expect(without.ids == ids, "ids_no_special", json(ids).dump(), json(without.ids).dump());
    expect(with.ids == c.at("ids_with_special").get<std::vector<int64_t>>(), "ids_with_special",
           c.at("ids_with_special").dump(), json(with.ids).dump());
    expect(with.tokens == c.at("tokens_with_special").get<std::vector<std::string>>(), "tokens_with_special",
           c.at("tokens_with_special").dump(), json(with.tokens).dump());
    std::vector<std::string> surface;
    for (const auto& p : spm.encode(text)) surface.push_back(p.piece);
    expect(surface == c.at("surface_pieces_no_special").get<std::vector<std::string>>(), "surface pieces",
           c.at("surface_pieces_no_special").dump(), json(surface).dump());
    const std::string dec = tok.decode(ids);
    expect(dec == c.at("decode_no_special").get<std::string>(), "decode_no_special",
           c.at("decode_no_special").dump(), json(dec).dump(-1, ' ', false, json::error_handler_t::replace));
    // Offsets are ordered character ranges inside the text.
    const size_t chars = text::count_chars(text);
    for (size_t i = 0; i < without.offsets.size(); ++i) {
      const auto [b, e] = without.offsets[i];
      expect(b <= e && e <= chars && (i == 0 || without.offsets[i - 1].first <= b), "offsets", "ordered ranges",
             json(without.offsets).dump());
    }
    failures += !ok;
  }
  return failures;
}

TEST(TokenizerSentencePieceModel, Llama2BpeWithByteFallback) {
  TempDir tmp;
  tmp.add(kData / "llama2_spm" / "tokenizer.model.gz");
  const std::string path = (tmp.path() / "tokenizer.model").string();
  const Tokenizer tok = Tokenizer::from_file(path);
  const auto spm = text::SentencePieceModel::from_file(path);
  const json cases = load_cases("llama2_spm");
  EXPECT_EQ(tok.vocab_size(), 32000u);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(check_spm_cases(tok, *spm, cases), 0);
  // Byte pieces of a split character decode back to it; a lone continuation byte to U+FFFD.
  EXPECT_EQ(tok.decode({243, 162, 169, 156}), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(tok.decode({15043, 162, 3186}), "Hello\xEF\xBF\xBD world");
  EXPECT_EQ(tok.decode({1, 15043, 2}, true), "Hello");
  // A directory with only tokenizer.model is read as LlamaTokenizer (bos, no eos).
  const Tokenizer dir_tok = Tokenizer::from_dir(tmp.path().string());
  EXPECT_EQ(dir_tok.encode("Hello world").ids, (std::vector<int64_t>{1, 15043, 3186}));
}

TEST(TokenizerSentencePieceModel, UnigramWithNfkcCharsmap) {
  TempDir tmp;
  tmp.add(kData / "sentencepiece" / "test_model.model.gz");
  const std::string path = (tmp.path() / "test_model.model").string();
  const Tokenizer tok = Tokenizer::from_file(path);
  const auto spm = text::SentencePieceModel::from_file(path);
  const json cases = load_cases("sentencepiece");
  EXPECT_EQ(tok.vocab_size(), 1000u);
  EXPECT_EQ(check_spm_cases(tok, *spm, cases), 0);
  // Extra whitespace is removed and the dummy prefix added; offsets point into the input.
  EXPECT_EQ(spm->normalize("  a   b  "), "\xE2\x96\x81" "a" "\xE2\x96\x81" "b");
  const Encoding e = tok.encode("  hello", false);
  ASSERT_FALSE(e.offsets.empty());
  EXPECT_EQ(e.offsets.back().second, 7u);
  // Malformed UTF-8 never throws.
  EXPECT_NO_THROW(spm->encode(std::string("\xFF\xC3 a\xE2\x82", 6)));
}

TEST(TokenizerSentencePieceModel, BadFilesNameTheProblem) {
  auto error_of = [](const std::string& bytes) -> std::string {
    try {
      text::SentencePieceModel::from_bytes(bytes, "m.model");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  // pieces { piece: "<unk>" type: UNKNOWN } pieces { piece: "a" score: 0 }
  const std::string unk("\x0a\x09\x0a\x05<unk>\x18\x02", 11);
  const std::string a("\x0a\x03\x0a\x01" "a", 5);
  EXPECT_EQ(error_of(unk + a), "");
  EXPECT_NE(error_of("").find("no pieces"), std::string::npos);
  EXPECT_NE(error_of(a).find("unk is not defined"), std::string::npos);
  EXPECT_NE(error_of(unk + a + a).find("pieces[2]: 'a' is already defined"), std::string::npos);
  EXPECT_NE(error_of(unk.substr(0, 6)).find("longer"), std::string::npos);
  EXPECT_NE(error_of("\x0a").find("truncated varint"), std::string::npos);
  // trainer_spec { model_type: WORD }
  EXPECT_NE(error_of(unk + a + std::string("\x12\x02\x18\x03", 4)).find("model_type 3"), std::string::npos);
  // a byte piece without byte_fallback
  EXPECT_NE(error_of(unk + std::string("\x0a\x0a\x0a\x06<0x41>\x18\x06", 12)).find("byte_fallback is false"),
            std::string::npos);
  // normalizer_spec { precompiled_charsmap: "\xff\xff\x00\x00\x01" }
  EXPECT_NE(error_of(unk + a + std::string("\x1a\x07\x12\x05\xff\xff\x00\x00\x01", 9)).find("precompiled_charsmap"),
            std::string::npos);
  const auto tiny = text::SentencePieceModel::from_bytes(unk + a, "m.model");
  std::vector<int64_t> ids;
  for (const auto& p : tiny->encode("a b")) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 0}));  // "▁" unknown, "a", "▁b" fused unknown
}

TEST(TokenizerErrors, NameThePartAtFault) {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      Tokenizer::from_json_string(text, "t.json");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  EXPECT_EQ(error_of("{" + model + "}"), "");
  EXPECT_NE(error_of(R"({"normalizer": null})").find("model: missing"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}})").find("model.merges[0]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})").find("model.merges[0]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "Nope"}})").find("unknown model type 'Nope'"), std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "normalizer": {"type": "Bogus"}})").find("normalizer.type"), std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "X"}]}})")
                .find("pre_tokenizer.pretokenizers[0].type"),
            std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated", "invert": false}})")
                .find("pattern.Regex"),
            std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "decoder": {"type": "Strip", "content": "ab"}})").find("decoder.content"),
            std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[X]", "type_id": 0}}], "special_tokens": {}}})")
                .find("'[X]'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})").find("model.vocab"),
            std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "!!"}})")
                .find("normalizer.precompiled_charsmap"),
            std::string::npos);
  EXPECT_NE(error_of("{" + model + R"(, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "AAAAAA=="}})")
                .find("normalizer.precompiled_charsmap"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"model": )").find("t.json"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("t.json"), std::string::npos);
  EXPECT_THROW(Tokenizer::from_dir((kData / "no_such_dir").string()), Error);
}

TEST(TokenizerRegex, OnigurumaIterationSemantics) {
  // Oniguruma find_iter: an empty match right after a non-empty one is skipped once.
  const text::Regex star = text::Regex::compile("a*");
  const auto m = star.find_all("baaac");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0], std::make_pair(size_t{0}, size_t{0}));
  EXPECT_EQ(m[1], std::make_pair(size_t{1}, size_t{4}));
  EXPECT_EQ(m[2], std::make_pair(size_t{5}, size_t{5}));
  // A pattern that backtracks exponentially is stopped with an error, not a hang.
  const text::Regex bad = text::Regex::compile("(a|aa)*(a|aa)*(a|aa)*c");
  EXPECT_THROW(bad.find_all(std::string(200, 'a')), Error);
}

// Pairs of texts against the Rust reference (tests/data/tokenizers/pair_cases.json.gz, made
// by tests/diff/make_pair_cases.mjs): every post-processor's pair layout, with and without
// special tokens, and truncation longest_first / only_first / only_second, right and left
// (left through tokenizer.json's "truncation", right through encode_pair's max_length).
TEST(TokenizerPairs, MatchReference) {
  const json all = json::parse(gunzip(kData / "pair_cases.json.gz"));
  size_t checked = 0, errors = 0;
  for (const json& t : all["tokenizers"]) {
    json base = json::parse(gunzip(kData / t["file"].get<std::string>()));
    if (!t["post_processor"].is_null()) base["post_processor"] = t["post_processor"];
    base["truncation"] = nullptr;
    base["padding"] = nullptr;
    const std::string name = t["name"];
    const Tokenizer plain = Tokenizer::from_json_string(base.dump(), name);
    for (const json& c : t["cases"]) {
      const std::string a = c["a"], b = c["b"];
      const bool special = c["add_special_tokens"];
      SCOPED_TRACE(name + ": " + c.dump().substr(0, 200));
      size_t max_length = 0;
      TruncationStrategy strategy = TruncationStrategy::kLongestFirst;
      const Tokenizer* tok = &plain;
      std::optional<Tokenizer> with_json_truncation;
      if (c.contains("truncation")) {
        const json& tr = c["truncation"];
        const std::string s = tr["strategy"];
        if (tr["direction"] == "Left") {
          json j = base;
          j["truncation"] = {{"direction", "Left"}, {"max_length", tr["max_length"]}, {"strategy", s}, {"stride", 0}};
          with_json_truncation = Tokenizer::from_json_string(j.dump(), name);
          tok = &*with_json_truncation;
        } else {
          max_length = tr["max_length"];
          strategy = s == "OnlyFirst"    ? TruncationStrategy::kOnlyFirst
                     : s == "OnlySecond" ? TruncationStrategy::kOnlySecond
                                         : TruncationStrategy::kLongestFirst;
        }
      }
      if (c.contains("error")) {
        EXPECT_THROW(tok->encode_pair(a, b, special, max_length, strategy), Error);
        ++errors;
        continue;
      }
      const text::Encoding e = tok->encode_pair(a, b, special, max_length, strategy);
      EXPECT_EQ(e.ids, c["ids"].get<std::vector<int64_t>>());
      EXPECT_EQ(e.type_ids, c["type_ids"].get<std::vector<int64_t>>());
      EXPECT_EQ(e.special_tokens_mask, c["special_tokens_mask"].get<std::vector<int64_t>>());
      EXPECT_EQ(e.attention_mask, std::vector<int64_t>(e.size(), 1));
      ++checked;
    }
  }
  EXPECT_GT(checked, 700u);
  EXPECT_GT(errors, 50u);
}

// A TemplateProcessing without a "pair" template cannot lay out a pair: an error naming it.
TEST(TokenizerPairs, TemplateWithoutPairIsAnError) {
  json j = json::parse(gunzip(kData / "bert" / "hf_saved" / "tokenizer.json.gz"));
  j["post_processor"].erase("pair");
  const Tokenizer tok = Tokenizer::from_json_string(j.dump(), "bert");
  EXPECT_EQ(tok.encode("hello").ids, (std::vector<int64_t>{101, 7592, 102}));
  try {
    tok.encode_pair("hello", "world");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pair"), std::string::npos) << e.what();
  }
}

// Full-size reference files when the shared fixture tree is present (skipped otherwise):
// the reduced copies in tests/data cover behaviour; these check loading at full size.
TEST(TokenizerFullSize, SharedTokenizerJson) {
  const fs::path shared = fs::path(LUMEN_SOURCE_DIR).parent_path() / "shared" / "fixtures" / "public" / "tokenizers";
  if (!fs::exists(shared / "qwen" / "tokenizer.json")) GTEST_SKIP() << "shared fixtures not present";
  for (const std::string name : {"llama3", "qwen"}) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tokenizer tok = Tokenizer::from_file((shared / name / "tokenizer.json").string());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << name << " tokenizer.json loaded in " << ms << " ms, vocab " << tok.vocab_size() << "\n";
    const json cases = json::parse(std::ifstream(shared / name / "cases.json"));
    EXPECT_EQ(check_cases(tok, cases, name + " (full)"), 0);
    EXPECT_EQ(tok.vocab_size(), cases.value("vocab_size_with_added", tok.vocab_size()));
  }
}

}  // namespace
}  // namespace lumen
