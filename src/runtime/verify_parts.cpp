#include "runtime/verify_parts.h"

#include <filesystem>

#include "formats/json_config.h"
#include "formats/safetensors.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen {

using nlohmann::json;

namespace {

// Loads the tokenizer as the fixture's reference was built (FORMAT.md section 7):
// tokenizer.json with tokenizers' from_file; the vocab-file kinds as transformers reads a dir.
// A sentencepiece fixture names its .model file; it is loaded with the library's semantics.
Tokenizer load_fixture_tokenizer(const std::string& dir, const std::string& kind, const json& record) {
  if (kind == "tokenizer.json") return Tokenizer::from_file(dir + "/tokenizer.json");
  if (kind == "sentencepiece") {
    std::string file = "tokenizer.model";
    if (record.contains("files") && record["files"].is_array())
      for (const auto& f : record["files"])
        if (f.is_string() && f.get<std::string>().ends_with(".model")) file = f.get<std::string>();
    return Tokenizer::from_file(dir + "/" + file);
  }
  return Tokenizer::from_dir(dir);  // clip_bpe_gz, bpe_vocab_merges, wordpiece_vocab
}

bool tokenizer_kind_supported(const std::string& kind) {
  return kind == "tokenizer.json" || kind == "clip_bpe_gz" || kind == "bpe_vocab_merges" ||
         kind == "wordpiece_vocab" || kind == "sentencepiece";
}

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// The first difference between two id lists, described for a human.
std::string first_difference(const std::vector<int64_t>& got, const std::vector<int64_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  auto at = [](const std::vector<int64_t>& v, size_t k) { return k < v.size() ? std::to_string(v[k]) : "<end>"; };
  return "token " + std::to_string(i) + ": got " + at(got, i) + ", expected " + at(want, i);
}

}  // namespace

CaseResult run_tokenizer_group(const std::string& root, const json& record) {
  CaseResult r;
  const std::string name = record.value("name", std::string("?"));
  const std::string kind = record.value("kind", std::string("?"));
  r.name = "tokenizer:" + name;
  r.group = "tokenizer";
  if (!tokenizer_kind_supported(kind)) {
    r.status = CaseStatus::Skip;
    r.message = "tokenizer kind '" + kind + "' not supported yet";
    return r;
  }
  try {
    const std::string dir = root + "/tokenizers/" + name;
    const std::string cases_path = root + "/" + record.value("cases_file", "tokenizers/" + name + "/cases.json");
    json cases = JsonView::load_file(cases_path);
    LUMEN_CHECK(cases.contains("cases") && cases["cases"].is_array(), cases_path, ": no 'cases' list");
    Tokenizer tok = load_fixture_tokenizer(dir, kind, record);
    TensorCheck ids_check{"ids (with and without specials)", 0, 0, true, ""};
    TensorCheck decode_check{"decode (with and without skipping specials)", 0, 0, true, ""};
    size_t n = 0, bad_ids = 0, bad_decode = 0;
    for (const auto& c : cases["cases"]) {
      ++n;
      const std::string text = c.value("text", std::string());
      for (bool special : {true, false}) {
        const char* key = special ? "ids_with_special" : "ids_no_special";
        if (!c.contains(key)) continue;
        std::vector<int64_t> want = c[key].get<std::vector<int64_t>>();
        std::vector<int64_t> got = tok.encode(text, special).ids;
        if (got != want) {
          ++bad_ids;
          if (ids_check.pass)
            ids_check.note = "case " + std::to_string(n - 1) + " " + json(text).dump() + " (" + key +
                             "): " + first_difference(got, want) + "; got " + ids_str(got);
          ids_check.pass = false;
        }
      }
      // sentencepiece records: decode(ids_no_special) and id_to_piece of each id.
      if (c.contains("decode_no_special") && c.contains("ids_no_special")) {
        std::string got = tok.decode(c["ids_no_special"].get<std::vector<int64_t>>(), false);
        if (got != c["decode_no_special"].get<std::string>()) {
          ++bad_decode;
          if (decode_check.pass)
            decode_check.note = "case " + std::to_string(n - 1) + " (decode_no_special): got " +
                                json(got).dump(-1, ' ', false, json::error_handler_t::replace) + ", expected " +
                                c["decode_no_special"].dump();
          decode_check.pass = false;
        }
      }
      if (kind == "sentencepiece" && c.contains("ids_no_special") && c.contains("tokens_no_special")) {
        const auto ids = c["ids_no_special"].get<std::vector<int64_t>>();
        const auto& tokens = c["tokens_no_special"];
        for (size_t i = 0; i < ids.size() && i < tokens.size(); ++i) {
          if (tok.id_to_token(ids[i]).value_or("") != tokens[i].get<std::string>()) {
            ++bad_ids;
            if (ids_check.pass)
              ids_check.note = "case " + std::to_string(n - 1) + ": id_to_piece(" + std::to_string(ids[i]) +
                               ") differs from " + tokens[i].dump();
            ids_check.pass = false;
            break;
          }
        }
      }
      if (c.contains("ids_with_special")) {
        std::vector<int64_t> ids = c["ids_with_special"].get<std::vector<int64_t>>();
        for (bool skip : {false, true}) {
          const char* key = skip ? "decode_skip_special" : "decode_with_special";
          if (!c.contains(key)) continue;
          std::string got = tok.decode(ids, skip);
          if (got != c[key].get<std::string>()) {
            ++bad_decode;
            if (decode_check.pass)
              decode_check.note = "case " + std::to_string(n - 1) + " (" + key + "): got " +
                                  json(got).dump(-1, ' ', false, json::error_handler_t::replace) + ", expected " +
                                  c[key].dump();
            decode_check.pass = false;
          }
        }
      }
    }
    ids_check.max_abs = static_cast<double>(bad_ids);
    decode_check.max_abs = static_cast<double>(bad_decode);
    r.checks = {ids_check, decode_check};
    r.status = ids_check.pass && decode_check.pass ? CaseStatus::Pass : CaseStatus::Fail;
    r.message = std::to_string(n) + " strings";
  } catch (const std::exception& e) {
    r.status = CaseStatus::Fail;
    r.message = e.what();
  }
  return r;
}

CaseResult run_preprocess_entry(const std::string& root, const json& entry, const json& section) {
  CaseResult r;
  const std::string name = entry.value("name", std::string("?"));
  const std::string proc = entry.value("processor", std::string("?"));
  r.name = "preprocess:" + name;
  r.group = "preprocess";
  if (!entry.contains("expected") || !entry["expected"].is_string()) {
    r.status = CaseStatus::Skip;
    r.message = "no expected tensors in this fixture (" + entry.value("skipped", std::string("not generated")) + ")";
    return r;
  }
  try {
    std::string config = root + "/preprocess/" + proc + "/preprocessor_config_slow.json";
    if (section.contains("processors") && section["processors"].contains(proc)) {
      const json& p = section["processors"][proc];
      if (p.contains("configs") && p["configs"].contains("slow") && p["configs"]["slow"].is_string())
        config = root + "/" + p["configs"]["slow"].get<std::string>();
    }
    ImageProcessor ip = ImageProcessor::from_file(config);
    if (!ip.supported()) {
      r.status = CaseStatus::Skip;
      r.message = ip.unsupported_reason();
      return r;
    }
    auto expected = SafetensorsFile::open(root + "/" + entry["expected"].get<std::string>());
    LUMEN_CHECK(expected->has("pixel_values_slow"), "expected file has no pixel_values_slow");
    Tensor want = expected->get("pixel_values_slow");
    const Image image = decode_image_file(root + "/" + entry.at("image").get<std::string>());
    const ProcessedImages got = ip.process({image});
    r.checks.push_back(
        compare_tensors("pixel_values", got.pixel_values, want, entry.value("atol", 1e-4), entry.value("rtol", 0.0)));
    // LLaVA-NeXT also returns the original (height, width) of each image.
    if (expected->has("image_sizes_slow")) {
      LUMEN_CHECK(got.image_sizes.defined(), ip.type(), " returns no image_sizes, the fixture has image_sizes_slow");
      r.checks.push_back(compare_tensors("image_sizes", got.image_sizes, expected->get("image_sizes_slow"), 0, 0));
    }
    r.status = CaseStatus::Pass;
    for (const TensorCheck& c : r.checks)
      if (!c.pass) r.status = CaseStatus::Fail;
  } catch (const UnsupportedImageProcessor& e) {
    r.status = CaseStatus::Skip;
    r.message = e.what();
  } catch (const std::exception& e) {
    r.status = CaseStatus::Fail;
    r.message = e.what();
  }
  return r;
}

}  // namespace lumen
