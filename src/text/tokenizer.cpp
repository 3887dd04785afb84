#include "text/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "text/added_vocabulary.h"
#include "text/components.h"
#include "text/sentencepiece.h"
#include "text/tokenizer_json.h"

namespace lumen {

using namespace text;  // NOLINT: this file is the glue of the text module

struct Tokenizer::Impl {
  std::string label;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  AddedVocabulary added;
  // A SentencePiece .model instead of the pipeline above (normalizer..decoder unused, model
  // null): the library's own encode/decode, with bos/eos added around each text as asked.
  std::shared_ptr<const SentencePieceModel> spm;
  bool spm_add_bos = false, spm_add_eos = false;

  // tokenizer.json "truncation" / "padding" (honoured by from_file, ignored under
  // transformers semantics, which resets them per call).
  size_t json_max_length = 0;
  bool json_truncate_left = false;
  TruncationStrategy json_strategy = TruncationStrategy::kLongestFirst;
  std::optional<size_t> json_pad_to;  // Fixed(n); BatchLongest pads a single text to itself
  std::optional<int64_t> json_pad_id;
  bool honor_json_limits = true;

  // transformers-level behaviour (tokenizer_config.json)
  std::string tokenizer_class;
  std::string clip_word_suffix;  // non-empty: CLIPTokenizer's decode (suffix -> " ", then strip)
  bool clean_up_tokenization_spaces = false;
  std::optional<std::string> bos, eos, pad, unk;
  size_t model_max_length = 0;

  std::optional<int64_t> id_of(const std::optional<std::string>& token) const {
    if (!token) return std::nullopt;
    if (spm) {
      if (auto id = spm->find_piece(*token)) return *id;
      return std::nullopt;
    }
    if (auto id = added.token_to_id(*token)) return *id;
    if (auto id = model->token_to_id(*token)) return *id;
    return std::nullopt;
  }
};

namespace {

std::string python_strip(const std::string& s) {
  const std::u32string chars = decode_utf8(s);
  size_t b = 0, e = chars.size();
  while (b < e && is_python_space(chars[b])) ++b;
  while (e > b && is_python_space(chars[e - 1])) --e;
  return to_utf8(std::u32string_view(chars).substr(b, e - b));
}


// transformers' PreTrainedTokenizerBase.clean_up_tokenization.
std::string clean_up_tokenization(std::string s) {
  for (auto [from, to] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
                          {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
    s = replace_all(s, from, to);
  return s;
}

std::vector<AddedToken> parse_added_tokens(const Fields& top) {
  std::vector<AddedToken> out;
  if (!top.has("added_tokens")) return out;
  const json& list = top.array("added_tokens");
  for (size_t i = 0; i < list.size(); ++i) {
    const Fields t(list[i], top.at("added_tokens") + "[" + std::to_string(i) + "]");
    AddedToken a;
    a.content = t.str("content");
    a.single_word = t.boolean("single_word", false);
    a.lstrip = t.boolean("lstrip", false);
    a.rstrip = t.boolean("rstrip", false);
    a.normalized = t.boolean("normalized", true);
    a.special = t.boolean("special", false);
    out.push_back(std::move(a));
  }
  return out;
}

// Builds the pipeline from a parsed tokenizer.json.
std::shared_ptr<Tokenizer::Impl> build(TokenizerJson tj, const std::string& label) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->label = label;
  const Fields top(tj.top, label + ": ");
  if (top.has("version")) {
    const std::string v = top.str("version");
    LUMEN_CHECK(v == "1.0", top.at("version"), ": unknown tokenizer version '", v, "'");
  }
  LUMEN_CHECK(tj.has_model, label, ": model: missing");
  const std::string sep = ": ";
  if (top.has("normalizer")) impl->normalizer = Normalizer::from_json(top.get("normalizer"), label + sep + "normalizer");
  if (top.has("pre_tokenizer"))
    impl->pre_tokenizer = PreTokenizer::from_json(top.get("pre_tokenizer"), label + sep + "pre_tokenizer");
  impl->model = Model::from_data(std::move(tj.model), label + sep + "model");
  if (top.has("post_processor"))
    impl->post_processor = PostProcessor::from_json(top.get("post_processor"), label + sep + "post_processor");
  if (top.has("decoder")) impl->decoder = Decoder::from_json(top.get("decoder"), label + sep + "decoder");
  impl->added.add_tokens(parse_added_tokens(top), *impl->model, impl->normalizer.get());

  if (top.has("truncation")) {
    const Fields t = top.object("truncation");
    impl->json_max_length = t.uint("max_length", 512);
    impl->json_truncate_left = t.str("direction", "Right") == "Left";
    const std::string strategy = t.str("strategy", "LongestFirst");
    if (strategy == "OnlyFirst") impl->json_strategy = TruncationStrategy::kOnlyFirst;
    else if (strategy == "OnlySecond") impl->json_strategy = TruncationStrategy::kOnlySecond;
    else LUMEN_CHECK(strategy == "LongestFirst", t.at("strategy"), ": unknown truncation strategy '", strategy, "'");
  }
  if (top.has("padding")) {
    const Fields p = top.object("padding");
    if (p.has("pad_id")) impl->json_pad_id = static_cast<int64_t>(p.uint("pad_id"));
    if (p.has("strategy") && p.get("strategy").is_object()) {
      const Fields s = p.object("strategy");
      if (s.has("Fixed")) impl->json_pad_to = s.uint("Fixed");
    }
  }
  return impl;
}

bool file_exists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

// A special-token entry of tokenizer_config.json: "..." or {"content": "...", ...}.
std::optional<std::string> special_name(const json& cfg, const std::string& key) {
  if (!cfg.is_object()) return std::nullopt;
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

struct DirConfig {
  json config = json::object();      // tokenizer_config.json
  json special_map = json::object();  // special_tokens_map.json
  std::string tokenizer_class;

  std::optional<std::string> special(const std::string& key) const {
    if (auto v = special_name(config, key)) return v;
    return special_name(special_map, key);
  }
  std::optional<bool> flag(const std::string& key) const {
    auto it = config.find(key);
    if (it != config.end() && it->is_boolean()) return it->get<bool>();
    return std::nullopt;
  }
};

DirConfig read_dir_config(const std::filesystem::path& dir) {
  DirConfig c;
  auto load = [](const std::filesystem::path& p) {
    const std::string text = read_file(p.string());
    try {
      json j = json::parse(text);
      LUMEN_CHECK(j.is_object(), p.string(), ": expected a JSON object");
      return j;
    } catch (const json::exception& e) {
      fail(p.string(), ": not valid JSON: ", e.what());
    }
  };
  if (file_exists(dir / "tokenizer_config.json")) c.config = load(dir / "tokenizer_config.json");
  if (file_exists(dir / "special_tokens_map.json")) c.special_map = load(dir / "special_tokens_map.json");
  auto it = c.config.find("tokenizer_class");
  if (it != c.config.end() && it->is_string()) c.tokenizer_class = it->get<std::string>();
  if (c.tokenizer_class.size() > 4 && c.tokenizer_class.ends_with("Fast"))
    c.tokenizer_class.resize(c.tokenizer_class.size() - 4);  // transformers 5: same class
  return c;
}

json added_token_json(const std::string& content, uint32_t id) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", true}};
}

// merges.txt: one "left right" pair per line; "#version" lines and blank lines skipped.
MergeList read_merges_txt(const std::string& path) {
  const std::string text = read_file(path);
  LUMEN_CHECK(is_valid_utf8(text), path, ": not valid UTF-8");
  MergeList merges;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t sp = line.find(' ');
    LUMEN_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos, path, ": line ",
                line_no, ": expected two tokens separated by one space");
    merges.add(line.substr(0, sp), line.substr(sp + 1));
  }
  return merges;
}

// What transformers 5 builds for CLIPTokenizer / GPT2Tokenizer from vocab.json + merges.txt
// (models/clip/tokenization_clip.py, models/gpt2/tokenization_gpt2.py).
TokenizerJson byte_level_bpe_from_files(const std::filesystem::path& dir, const DirConfig& cfg, bool clip) {
  TokenizerJson tj;
  const std::string vocab_path = (dir / "vocab.json").string();
  tj.model.vocab = parse_vocab_json(read_file(vocab_path), vocab_path);
  tj.model.merges = read_merges_txt((dir / "merges.txt").string());
  tj.has_model = true;
  const Vocab& vocab = tj.model.vocab;
  json& top = tj.top;
  top["version"] = "1.0";
  if (clip) {
    const std::string bos = cfg.special("bos_token").value_or("<|startoftext|>");
    const std::string eos = cfg.special("eos_token").value_or("<|endoftext|>");
    const std::string unk = cfg.special("unk_token").value_or("<|endoftext|>");
    const uint32_t bos_id = vocab.find(bos).value_or(0);
    const uint32_t eos_id = vocab.find(eos).value_or(1);
    tj.model.rest = {{"type", "BPE"},
                     {"unk_token", unk},
                     {"continuing_subword_prefix", ""},
                     {"end_of_word_suffix", "</w>"},
                     {"fuse_unk", false}};
    top["added_tokens"] = json::array({added_token_json(bos, bos_id), added_token_json(eos, eos_id)});
    top["normalizer"] = {{"type", "Sequence"},
                         {"normalizers",
                          json::array({{{"type", "NFC"}},
                                       {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}},
                                       {{"type", "Lowercase"}}})}};
    const char* pattern =
        R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
    top["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Removed"}, {"invert", true}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}})}};
    top["post_processor"] = {{"type", "RobertaProcessing"},
                             {"sep", json::array({eos, eos_id})},
                             {"cls", json::array({bos, bos_id})},
                             {"trim_offsets", false},
                             {"add_prefix_space", false}};
    top["decoder"] = {{"type", "ByteLevel"}};
  } else {
    const bool add_prefix_space = cfg.flag("add_prefix_space").value_or(false);
    tj.model.rest = {{"type", "BPE"}, {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false}};
    json added = json::array();
    for (const std::string key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      std::optional<std::string> name = cfg.special(key);
      if (!name && key != "pad_token") name = "<|endoftext|>";  // GPT2Tokenizer's defaults
      if (!name) continue;
      bool seen = false;
      for (const json& a : added) seen = seen || a["content"] == *name;
      if (auto id = vocab.find(*name); id && !seen) added.push_back(added_token_json(*name, *id));
    }
    top["added_tokens"] = added;
    top["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", true}};
    top["post_processor"] = {{"type", "TemplateProcessing"},
                             {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                             {"special_tokens", json::object()}};
    top["decoder"] = {{"type", "ByteLevel"}};
  }
  return tj;
}

// What transformers 5 builds for BertTokenizer from vocab.txt (models/bert/tokenization_bert.py).
TokenizerJson wordpiece_from_vocab_txt(const std::filesystem::path& dir, const DirConfig& cfg) {
  TokenizerJson tj;
  const std::string path = (dir / "vocab.txt").string();
  const std::string text = read_file(path);
  LUMEN_CHECK(is_valid_utf8(text), path, ": not valid UTF-8");
  Vocab& vocab = tj.model.vocab;
  vocab.reserve(32768);
  uint32_t index = 0;
  for (size_t pos = 0; pos < text.size(); ++index) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    vocab.add(line, index);
    pos = end + 1;
  }
  tj.has_model = true;
  const std::string unk = cfg.special("unk_token").value_or("[UNK]");
  const std::string cls = cfg.special("cls_token").value_or("[CLS]");
  const std::string sep = cfg.special("sep_token").value_or("[SEP]");
  const std::string pad = cfg.special("pad_token").value_or("[PAD]");
  const std::string mask = cfg.special("mask_token").value_or("[MASK]");
  tj.model.rest = {{"type", "WordPiece"}, {"unk_token", unk}, {"continuing_subword_prefix", "##"}, {"max_input_chars_per_word", 100}};
  json& top = tj.top;
  top["version"] = "1.0";
  std::vector<std::pair<uint32_t, std::string>> specials;
  for (const std::string& s : {pad, unk, cls, sep, mask})
    if (auto id = vocab.find(s)) specials.emplace_back(*id, s);
  std::sort(specials.begin(), specials.end());
  json added = json::array();
  for (const auto& [id, s] : specials) added.push_back(added_token_json(s, id));
  top["added_tokens"] = added;
  json strip_accents = nullptr;
  if (auto it = cfg.config.find("strip_accents"); it != cfg.config.end() && it->is_boolean()) strip_accents = *it;
  top["normalizer"] = {{"type", "BertNormalizer"},
                       {"clean_text", true},
                       {"handle_chinese_chars", cfg.flag("tokenize_chinese_chars").value_or(true)},
                       {"strip_accents", strip_accents},
                       {"lowercase", cfg.flag("do_lower_case").value_or(true)}};
  top["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  const uint32_t cls_id = vocab.find(cls).value_or(2), sep_id = vocab.find(sep).value_or(3);
  top["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", cls}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", sep}, {"type_id", 0}}}}})},
      {"special_tokens",
       {{cls, {{"id", cls}, {"ids", {cls_id}}, {"tokens", {cls}}}}, {sep, {{"id", sep}, {"ids", {sep_id}}, {"tokens", {sep}}}}}}};
  top["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  return tj;
}

// Special tokens implied by the post-processor when no config names them.
void infer_specials(Tokenizer::Impl& impl, const json& post) {
  if (!post.is_object() || !post.contains("type")) return;
  const std::string type = post["type"].is_string() ? post["type"].get<std::string>() : "";
  auto first = [](const json& pair) -> std::optional<std::string> {
    if (pair.is_array() && !pair.empty() && pair[0].is_string()) return pair[0].get<std::string>();
    return std::nullopt;
  };
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    if (!impl.bos && post.contains("cls")) impl.bos = first(post["cls"]);
    if (!impl.eos && post.contains("sep")) impl.eos = first(post["sep"]);
  } else if (type == "TemplateProcessing" && post.contains("single") && post["single"].is_array()) {
    bool seen_sequence = false;
    for (const json& piece : post["single"]) {
      if (piece.contains("Sequence")) seen_sequence = true;
      if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id")) continue;
      const json& id = piece["SpecialToken"]["id"];
      if (!id.is_string()) continue;
      if (!seen_sequence && !impl.bos) impl.bos = id.get<std::string>();
      if (seen_sequence && !impl.eos) impl.eos = id.get<std::string>();
    }
  }
}

std::shared_ptr<Tokenizer::Impl> spm_impl(std::shared_ptr<const SentencePieceModel> spm, const std::string& label,
                                          bool add_bos, bool add_eos) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->label = label;
  impl->spm_add_bos = add_bos && spm->bos_id().has_value();
  impl->spm_add_eos = add_eos && spm->eos_id().has_value();
  const SpmModelProto& p = spm->proto();
  if (spm->bos_id()) impl->bos = p.bos_piece;
  if (spm->eos_id()) impl->eos = p.eos_piece;
  if (spm->pad_id()) impl->pad = p.pad_piece;
  impl->unk = spm->id_to_piece(spm->unk_id());
  impl->spm = std::move(spm);
  return impl;
}

// Encoding of a SentencePiece model's pieces; offsets go from bytes to characters of `text`.
Encoding spm_encoding(const SentencePieceModel& spm, std::string_view text) {
  const std::vector<SentencePieceModel::Piece> pieces = spm.encode(text);
  std::vector<size_t> char_at(text.size() + 1, 0);  // byte offset -> character offset
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char_at[i] = chars;
    if (!is_utf8_continuation(static_cast<unsigned char>(text[i]))) ++chars;
  }
  char_at[text.size()] = chars;
  // A byte offset inside a character belongs to the character it is in.
  for (size_t i = 0; i < text.size(); ++i)
    if (is_utf8_continuation(static_cast<unsigned char>(text[i])) && char_at[i] > 0) char_at[i] = char_at[i] - 1;
  Encoding enc;
  const size_t n = pieces.size();
  enc.ids.reserve(n);
  enc.tokens.reserve(n);
  enc.offsets.reserve(n);
  for (const auto& p : pieces) {
    enc.ids.push_back(p.id);
    enc.tokens.push_back(spm.id_to_piece(p.id));
    enc.offsets.emplace_back(char_at[p.begin], char_at[p.end]);
  }
  enc.type_ids.assign(n, 0);
  enc.special_tokens_mask.assign(n, 0);
  enc.attention_mask.assign(n, 1);
  enc.word_ids.assign(n, 0);
  return enc;
}

Encoding special_token_encoding(int64_t id, const std::string& token) {
  Encoding e;
  e.ids = {id};
  e.tokens = {token};
  e.offsets = {Offsets{0, 0}};
  e.type_ids = {0};
  e.special_tokens_mask = {1};
  e.attention_mask = {1};
  e.word_ids = {-1};
  return e;
}

}  // namespace

Tokenizer Tokenizer::from_json_string(std::string_view json_text, const std::string& label) {
  TokenizerJson tj = parse_tokenizer_json(json_text, label);
  const json post = tj.top.contains("post_processor") ? tj.top["post_processor"] : json();
  std::shared_ptr<Impl> impl = build(std::move(tj), label);
  infer_specials(*impl, post);
  if (impl->json_pad_id) {
    if (auto t = impl->added.decode_token(static_cast<uint32_t>(*impl->json_pad_id))) impl->pad = *t;
    else if (auto m = impl->model->id_to_token(static_cast<uint32_t>(*impl->json_pad_id))) impl->pad = *m;
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  if (path.ends_with(".model")) {
    // The sentencepiece library's semantics: bos prepended when the model has one, no eos.
    auto spm = SentencePieceModel::from_file(path);
    return Tokenizer(spm_impl(std::move(spm), path, true, false));
  }
  auto file = MappedFile::open(path);
  return from_json_string(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

Tokenizer Tokenizer::from_dir(const std::string& dir_path) {
  const std::filesystem::path dir(dir_path);
  std::error_code ec;
  LUMEN_CHECK(std::filesystem::is_directory(dir, ec), dir_path, ": not a directory");
  DirConfig cfg = read_dir_config(dir);
  std::shared_ptr<Impl> impl;
  const std::filesystem::path tokenizer_json = dir / "tokenizer.json";
  if (file_exists(tokenizer_json)) {
    const std::string path = tokenizer_json.string();
    auto file = MappedFile::open(path);
    TokenizerJson tj = parse_tokenizer_json(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
    const json post = tj.top.contains("post_processor") ? tj.top["post_processor"] : json();
    impl = build(std::move(tj), path);
    infer_specials(*impl, post);
  } else if (file_exists(dir / "vocab.json") && file_exists(dir / "merges.txt")) {
    if (cfg.tokenizer_class.empty()) {
      // No config: CLIP's vocabulary is the only one with "<|startoftext|>" and "</w>" words.
      const std::string vocab_path = (dir / "vocab.json").string();
      const std::string text = read_file(vocab_path);
      const bool clip = text.find("\"<|startoftext|>\"") != std::string::npos && text.find("</w>\"") != std::string::npos;
      cfg.tokenizer_class = clip ? "CLIPTokenizer" : "GPT2Tokenizer";
    }
    const bool clip = cfg.tokenizer_class == "CLIPTokenizer";
    LUMEN_CHECK(clip || cfg.tokenizer_class == "GPT2Tokenizer" || cfg.tokenizer_class == "RobertaTokenizer" ||
                    cfg.tokenizer_class == "BartTokenizer",
                dir_path, ": tokenizer_class '", cfg.tokenizer_class,
                "' from vocab.json + merges.txt is not supported (no tokenizer.json)");
    LUMEN_CHECK(clip || cfg.tokenizer_class == "GPT2Tokenizer", dir_path, ": tokenizer_class '", cfg.tokenizer_class,
                "' needs its tokenizer.json");
    impl = build(byte_level_bpe_from_files(dir, cfg, clip), (dir / "vocab.json").string());
  } else if (file_exists(dir / "vocab.txt")) {
    if (cfg.tokenizer_class.empty()) cfg.tokenizer_class = "BertTokenizer";
    LUMEN_CHECK(cfg.tokenizer_class == "BertTokenizer" || cfg.tokenizer_class == "DistilBertTokenizer", dir_path,
                ": tokenizer_class '", cfg.tokenizer_class, "' from vocab.txt is not supported (no tokenizer.json)");
    impl = build(wordpiece_from_vocab_txt(dir, cfg), (dir / "vocab.txt").string());
  } else if (file_exists(dir / "tokenizer.model") || file_exists(dir / "spiece.model")) {
    // transformers' slow SentencePiece tokenizers: LlamaTokenizer adds bos, T5Tokenizer adds
    // eos; tokenizer_config.json's add_bos_token / add_eos_token override.
    const std::filesystem::path model = file_exists(dir / "tokenizer.model") ? dir / "tokenizer.model" : dir / "spiece.model";
    const bool t5 = cfg.tokenizer_class == "T5Tokenizer";
    const bool add_bos = cfg.flag("add_bos_token").value_or(!t5);
    const bool add_eos = cfg.flag("add_eos_token").value_or(t5);
    impl = spm_impl(SentencePieceModel::from_file(model.string()), model.string(), add_bos, add_eos);
  } else {
    fail(dir_path, ": no tokenizer.json, vocab.json + merges.txt, or vocab.txt");
  }

  // transformers semantics on top of the backend.
  Impl& t = *impl;
  t.honor_json_limits = false;
  t.tokenizer_class = cfg.tokenizer_class;
  if (t.tokenizer_class == "CLIPTokenizer") {
    t.clip_word_suffix = "</w>";
    if (!cfg.special("bos_token")) t.bos = "<|startoftext|>";
    if (!cfg.special("eos_token")) t.eos = "<|endoftext|>";
    if (!cfg.special("pad_token")) t.pad = "<|endoftext|>";
    if (!cfg.special("unk_token")) t.unk = "<|endoftext|>";
  } else if (t.tokenizer_class == "GPT2Tokenizer") {
    for (auto* field : {&t.bos, &t.eos, &t.unk}) *field = "<|endoftext|>";
  } else if (t.tokenizer_class == "BertTokenizer") {
    t.pad = "[PAD]";
    t.unk = "[UNK]";
  }
  if (auto v = cfg.special("bos_token")) t.bos = v;
  if (auto v = cfg.special("eos_token")) t.eos = v;
  if (auto v = cfg.special("pad_token")) t.pad = v;
  if (auto v = cfg.special("unk_token")) t.unk = v;
  t.clean_up_tokenization_spaces = cfg.flag("clean_up_tokenization_spaces").value_or(false);
  if (auto it = cfg.config.find("model_max_length"); it != cfg.config.end() && it->is_number()) {
    const double m = it->get<double>();
    if (m > 0 && m < 1e15) t.model_max_length = static_cast<size_t>(m);
  }
  return Tokenizer(std::move(impl));
}

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return encode(text, add_special_tokens, 0);
}

namespace {

// Keeps `keep` tokens, from the end when `left` (Encoding::truncate with stride 0).
void truncate_to(Encoding& enc, size_t keep, bool left) {
  if (enc.size() <= keep) return;
  if (!left) {
    enc.truncate(keep);
    return;
  }
  const auto drop = static_cast<ptrdiff_t>(enc.size() - keep);
  auto cut = [drop](auto& v) { v.erase(v.begin(), v.begin() + drop); };
  cut(enc.ids);
  cut(enc.tokens);
  cut(enc.offsets);
  cut(enc.type_ids);
  cut(enc.special_tokens_mask);
  cut(enc.attention_mask);
  cut(enc.word_ids);
}

// tokenizers' truncate_encodings (utils/truncation.rs) with stride 0: `max_length` is the
// budget left after the special tokens.
void truncate_encodings(Encoding& a, Encoding* b, size_t max_length, TruncationStrategy strategy, bool left,
                        const std::string& label) {
  if (max_length == 0) {
    truncate_to(a, 0, left);
    if (b) truncate_to(*b, 0, left);
    return;
  }
  const size_t total = a.size() + (b ? b->size() : 0);
  if (total <= max_length) return;
  const size_t to_remove = total - max_length;
  if (strategy == TruncationStrategy::kLongestFirst) {
    if (!b) {
      truncate_to(a, max_length, left);
      return;
    }
    // n1 is the shorter length: the longer sequence is cut first; if both are too long,
    // each gets half (the first one the extra token when max_length is odd).
    size_t n1 = a.size(), n2 = b->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
    if (n1 + n2 > max_length) {
      n1 = max_length / 2;
      n2 = n1 + max_length % 2;
    }
    if (swap) std::swap(n1, n2);
    truncate_to(a, n1, left);
    truncate_to(*b, n2, left);
    return;
  }
  Encoding* target = strategy == TruncationStrategy::kOnlyFirst ? &a : b;
  LUMEN_CHECK(target, label, ": truncation only_second needs a second sequence");
  LUMEN_CHECK(target->size() > to_remove, label,
              ": the sequence to truncate is too short to respect max_length (truncation ",
              strategy == TruncationStrategy::kOnlyFirst ? "only_first" : "only_second", ")");
  truncate_to(*target, target->size() - to_remove, left);
}

}  // namespace

Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens, size_t max_length) const {
  return encode_impl(text, nullptr, add_special_tokens, max_length, TruncationStrategy::kLongestFirst);
}

Encoding Tokenizer::encode_pair(std::string_view text, std::string_view pair, bool add_special_tokens,
                                size_t max_length, TruncationStrategy strategy) const {
  return encode_impl(text, &pair, add_special_tokens, max_length, strategy);
}

Encoding Tokenizer::encode_impl(std::string_view text, const std::string_view* pair, bool add_special_tokens,
                                size_t max_length, TruncationStrategy strategy) const {
  const Impl& t = *impl_;
  // One sequence through normalizer, pre-tokenizer and model (or the .model's own encode).
  auto encode_one = [&](std::string_view s, int64_t type_id) {
    const std::string safe = is_valid_utf8(s) ? std::string(s) : sanitize_utf8(s);
    Encoding enc;
    if (t.spm) {
      enc = spm_encoding(*t.spm, safe);
    } else {
      PreTokenizedString pts = t.added.extract_and_normalize(t.normalizer.get(), safe);
      if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(pts);
      pts.tokenize([&](const NormalizedString& n) { return t.model->tokenize(n.get()); });
      enc = pts.into_encoding(0);
    }
    std::fill(enc.type_ids.begin(), enc.type_ids.end(), type_id);
    return enc;
  };
  Encoding enc = encode_one(text, 0);
  std::optional<Encoding> second;
  if (pair) second = encode_one(*pair, 1);
  Encoding* b = second ? &*second : nullptr;

  bool truncate_left = false;
  if (max_length == 0 && t.honor_json_limits && t.json_max_length > 0) {
    max_length = t.json_max_length;
    truncate_left = t.json_truncate_left;
    strategy = t.json_strategy;
  }
  if (max_length > 0) {
    size_t added = 0;
    if (add_special_tokens && t.spm)
      added = (size_t{t.spm_add_bos} + size_t{t.spm_add_eos}) * (b ? 2 : 1);
    else if (add_special_tokens && t.post_processor)
      added = t.post_processor->added_tokens(b != nullptr);
    truncate_encodings(enc, b, max_length > added ? max_length - added : 0, strategy, truncate_left, t.label);
  }

  if (t.spm) {
    // LlamaTokenizer / T5Tokenizer's build_inputs_with_special_tokens.
    Encoding full;
    auto add_sequence = [&](const Encoding& seq, int64_t type_id) {
      Encoding part;
      if (add_special_tokens && t.spm_add_bos) part.append(special_token_encoding(*t.spm->bos_id(), *t.bos));
      part.append(seq);
      if (add_special_tokens && t.spm_add_eos) part.append(special_token_encoding(*t.spm->eos_id(), *t.eos));
      std::fill(part.type_ids.begin(), part.type_ids.end(), type_id);
      full.append(part);
    };
    add_sequence(enc, 0);
    if (b) add_sequence(*b, 1);
    enc = std::move(full);
  } else if (t.post_processor) {
    enc = t.post_processor->process(std::move(enc), b, add_special_tokens);
  } else if (b) {
    enc.append(*b);
  }

  if (t.honor_json_limits && t.json_pad_to && enc.size() < *t.json_pad_to) {
    const int64_t pid = t.json_pad_id.value_or(0);
    const size_t n = *t.json_pad_to - enc.size();
    enc.ids.insert(enc.ids.end(), n, pid);
    enc.tokens.insert(enc.tokens.end(), n, t.pad.value_or(""));
    enc.offsets.insert(enc.offsets.end(), n, Offsets{0, 0});
    enc.type_ids.insert(enc.type_ids.end(), n, 0);
    enc.special_tokens_mask.insert(enc.special_tokens_mask.end(), n, 1);
    enc.attention_mask.insert(enc.attention_mask.end(), n, 0);
    enc.word_ids.insert(enc.word_ids.end(), n, -1);
  }
  return enc;
}

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts, bool add_special_tokens, size_t pad_to,
                                      std::optional<int64_t> pad_id, bool truncate) const {
  std::vector<Encoding> rows;
  rows.reserve(texts.size());
  size_t longest = 0;
  for (const std::string& text : texts) {
    rows.push_back(encode(text, add_special_tokens, truncate ? pad_to : 0));
    longest = std::max(longest, rows.back().size());
  }
  const size_t length = std::max(pad_to, longest);
  if (!pad_id) pad_id = this->pad_id();
  const bool needs_padding = std::any_of(rows.begin(), rows.end(), [&](const Encoding& e) { return e.size() < length; });
  LUMEN_CHECK(pad_id || !needs_padding, impl_->label, ": padding needs a pad token, and this tokenizer has none");
  BatchEncoding out;
  out.batch = static_cast<int64_t>(texts.size());
  out.length = static_cast<int64_t>(length);
  out.ids.assign(texts.size() * length, pad_id.value_or(0));
  out.attention_mask.assign(texts.size() * length, 0);
  for (size_t b = 0; b < rows.size(); ++b) {
    std::copy(rows[b].ids.begin(), rows[b].ids.end(), out.ids.begin() + static_cast<ptrdiff_t>(b * length));
    std::copy(rows[b].attention_mask.begin(), rows[b].attention_mask.end(),
              out.attention_mask.begin() + static_cast<ptrdiff_t>(b * length));
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  if (t.spm) {
    if (!skip_special_tokens) return t.spm->decode(ids);
    // transformers' all_special_ids for these tokenizers: the control pieces and unk.
    std::vector<int64_t> kept;
    kept.reserve(ids.size());
    for (int64_t id : ids)
      if (id < 0 || static_cast<uint64_t>(id) >= t.spm->size() ||
          (!t.spm->is_control(static_cast<uint32_t>(id)) && static_cast<uint32_t>(id) != t.spm->unk_id()))
        kept.push_back(id);
    return t.spm->decode(kept);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id > UINT32_MAX) continue;
    const auto u = static_cast<uint32_t>(id);
    std::optional<std::string> token = t.added.decode_token(u);
    if (!token) token = t.model->id_to_token(u);
    if (!token) continue;
    // The check uses the decoding form, so a normalized special token is not skipped (as in
    // the reference).
    if (skip_special_tokens && t.added.is_special(*token)) continue;
    tokens.push_back(std::move(*token));
  }
  std::string text;
  if (t.decoder) {
    text = t.decoder->decode(std::move(tokens));
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  if (!t.clip_word_suffix.empty()) text = python_strip(replace_all(text, t.clip_word_suffix, " "));
  if (t.clean_up_tokenization_spaces) text = clean_up_tokenization(std::move(text));
  return text;
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  if (impl_->spm) {
    if (auto id = impl_->spm->find_piece(token)) return *id;
    return std::nullopt;
  }
  if (auto id = impl_->added.token_to_id(token)) return *id;
  if (auto id = impl_->model->token_to_id(token)) return *id;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id > UINT32_MAX) return std::nullopt;
  const auto u = static_cast<uint32_t>(id);
  if (impl_->spm) {
    if (u < impl_->spm->size()) return impl_->spm->id_to_piece(u);
    return std::nullopt;
  }
  if (const AddedToken* a = impl_->added.token_of(u)) return a->content;
  return impl_->model->id_to_token(u);
}

size_t Tokenizer::vocab_size() const {
  if (impl_->spm) return impl_->spm->size();
  size_t n = impl_->model->vocab_size();
  // Added tokens that the model vocabulary does not already hold.
  for (uint32_t id = 0; id < impl_->added.id_end(); ++id)
    if (const AddedToken* a = impl_->added.token_of(id); a && !impl_->model->token_to_id(a->content)) ++n;
  return n;
}

std::optional<int64_t> Tokenizer::bos_id() const { return impl_->id_of(impl_->bos); }
std::optional<int64_t> Tokenizer::eos_id() const { return impl_->id_of(impl_->eos); }
std::optional<int64_t> Tokenizer::pad_id() const {
  if (auto id = impl_->id_of(impl_->pad)) return id;
  return impl_->json_pad_id;
}
std::optional<int64_t> Tokenizer::unk_id() const { return impl_->id_of(impl_->unk); }
const std::string& Tokenizer::tokenizer_class() const { return impl_->tokenizer_class; }
size_t Tokenizer::model_max_length() const { return impl_->model_max_length; }

}  // namespace lumen
