#include "families/family_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "core/mapped_file.h"
#include "formats/json_config.h"
#include "formats/safetensors.h"
#include "blocks/decoder_lm.h"
#include "kernels/ops.h"

namespace lumen {

nlohmann::json clip_normalized_preprocessor(const std::string& type, nlohmann::json geometry) {
  nlohmann::json pre = std::move(geometry);
  pre.update({{"image_processor_type", type},
              {"do_resize", true},
              {"resample", 3},
              {"do_rescale", true},
              {"rescale_factor", 1.0 / 255.0},
              {"do_normalize", true},
              {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
              {"image_std", {0.26862954, 0.26130258, 0.27577711}},
              {"do_convert_rgb", true}});
  return pre;
}

void write_checkpoint(const std::string& dir, const nlohmann::json& config, const nlohmann::json& preprocessor,
                      const std::vector<std::pair<std::string, Tensor>>& tensors) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, ": cannot create directory: ", std::strerror(errno));
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
  if (!preprocessor.is_null()) write_file_atomic(dir + "/preprocessor_config.json", preprocessor.dump(2) + "\n");
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}, {"writer", "lumen make-tiny"}});
}

void add_contrastive_outputs(TensorMap& out, const Tensor& image_features, const Tensor& text_features, float scale,
                             float bias) {
  Tensor image_embeds = image_features.clone(), text_embeds = text_features.clone();
  ops::l2_normalize_rows(image_embeds.data<float>(), image_embeds.dim(0), image_embeds.dim(1));
  ops::l2_normalize_rows(text_embeds.data<float>(), text_embeds.dim(0), text_embeds.dim(1));
  out["image_embeds"] = image_embeds;
  out["text_embeds"] = text_embeds;
  const int64_t I = image_embeds.dim(0), T = text_embeds.dim(0), P = image_embeds.dim(1);
  Tensor per_text = Tensor::zeros({T, I});
  ops::gemm(false, true, T, I, P, scale, text_embeds.data<float>(), P, image_embeds.data<float>(), P, 0.f,
            per_text.data<float>(), I);
  Tensor per_image = Tensor::zeros({I, T});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < I; ++i) {
      per_text.data<float>()[t * I + i] += bias;
      per_image.data<float>()[i * T + t] = per_text.data<float>()[t * I + i];
    }
  out["logits_per_text"] = per_text;
  out["logits_per_image"] = per_image;
}

// Prompt embeddings of a single sequence whose image-token positions are already expanded.
Tensor vlm_prompt_embeddings(const VisionLanguageModel& vlm, const std::vector<int64_t>& ids,
                         const std::vector<ImageInput>& images, TensorMap* debug) {
  std::vector<Tensor> feats;
  for (const auto& img : images) feats.push_back(vlm.encode_image(img));
  if (debug && !feats.empty()) {
    const int64_t D = vlm.lm().cfg.dim;
    int64_t n_features = 0;
    for (const auto& f : feats) n_features += f.dim(0);
    Tensor all = Tensor::zeros({n_features, D});
    int64_t row = 0;
    for (const auto& f : feats) {
      std::memcpy(all.data<float>() + row * D, f.data<float>(), static_cast<size_t>(f.numel()) * sizeof(float));
      row += f.dim(0);
    }
    (*debug)["image_features"] = all;
  }
  return vlm_prompt_embeddings_from_features(vlm, ids, feats);
}

Tensor vlm_prompt_embeddings_from_features(const VisionLanguageModel& vlm, const std::vector<int64_t>& ids,
                                           const std::vector<Tensor>& feats) {
  const DecoderLm& lm = vlm.lm();
  const int64_t L = static_cast<int64_t>(ids.size()), D = lm.cfg.dim, image_id = vlm.image_token_id();
  std::vector<int64_t> text_ids(ids);
  int64_t n_image_positions = 0;
  for (auto& id : text_ids)
    if (id == image_id) {
      id = 0;  // embedded, then overwritten by image features (the id may lie outside the table)
      ++n_image_positions;
    }
  Tensor e = lm.embed(text_ids.data(), L);
  int64_t n_features = 0;
  for (const auto& f : feats) {
    LUMEN_CHECK(f.ndim() == 2 && f.dim(1) == D, "image features must be [n, ", D, "]");
    n_features += f.dim(0);
  }
  LUMEN_CHECK(n_features == n_image_positions, "the prompt has ", n_image_positions, " image-token positions (id ",
              image_id, ") but its ", feats.size(), " image(s) give ", n_features, " features");
  size_t fi = 0;
  int64_t frow = 0;
  for (int64_t i = 0; i < L; ++i) {
    if (ids[static_cast<size_t>(i)] != image_id) continue;
    while (frow >= feats[fi].dim(0)) {
      ++fi;
      frow = 0;
    }
    std::memcpy(e.data<float>() + i * D, feats[fi].data<float>() + frow * D, static_cast<size_t>(D) * sizeof(float));
    ++frow;
  }
  return e;
}

int64_t add_special_token(const std::string& dir, const std::string& content) {
  return add_tokens(dir, {content}, /*special=*/true, /*lstrip=*/false).front();
}

std::vector<int64_t> add_tokens(const std::string& dir, const std::vector<std::string>& contents, bool special,
                                bool lstrip) {
  const std::string path = dir + "/tokenizer.json";
  struct stat st {};
  LUMEN_CHECK(::stat(path.c_str(), &st) == 0, path, ": missing; this family needs a tokenizer.json tokenizer");
  nlohmann::json tok = JsonView::load_file(path);
  LUMEN_CHECK(tok.contains("model") && tok["model"].is_object(), path, ": no \"model\" object");
  if (!tok.contains("added_tokens") || !tok["added_tokens"].is_array()) tok["added_tokens"] = nlohmann::json::array();
  int64_t next_id = 0;
  std::map<std::string, int64_t> existing;
  for (const auto& t : tok["added_tokens"]) {
    existing[t.value("content", "")] = t.value("id", int64_t{-1});
    next_id = std::max(next_id, t.value("id", int64_t{0}) + 1);
  }
  const auto& vocab = tok["model"]["vocab"];
  if (vocab.is_object()) {
    for (const auto& [piece, id] : vocab.items())
      if (id.is_number_integer()) next_id = std::max(next_id, id.get<int64_t>() + 1);
  } else if (vocab.is_array()) {
    next_id = std::max(next_id, static_cast<int64_t>(vocab.size()));
  }
  std::vector<int64_t> ids;
  bool changed = false;
  for (const auto& content : contents) {
    if (auto it = existing.find(content); it != existing.end()) {
      ids.push_back(it->second);
      continue;
    }
    if (vocab.is_object() && vocab.contains(content))
      fail(path, ": '", content, "' is an ordinary vocabulary entry, not an added token");
    tok["added_tokens"].push_back({{"id", next_id}, {"content", content}, {"single_word", false}, {"lstrip", lstrip},
                                   {"rstrip", false}, {"normalized", false}, {"special", special}});
    existing[content] = next_id;
    ids.push_back(next_id++);
    changed = true;
  }
  if (changed) write_file_atomic(path, tok.dump(2) + "\n");
  return ids;
}

BeamSearchParams fixture_search_params(const nlohmann::json& meta) {
  const nlohmann::json g = meta.value("generation", nlohmann::json::object());
  BeamSearchParams p;
  p.max_new_tokens = g.value("max_new_tokens", int64_t{8});
  p.min_new_tokens = g.value("min_new_tokens", int64_t{0});
  p.num_beams = g.value("num_beams", int64_t{1});
  p.length_penalty = g.value("length_penalty", 1.f);
  p.no_repeat_ngram_size = g.value("no_repeat_ngram_size", int64_t{0});
  if (g.contains("early_stopping")) {
    const auto& e = g["early_stopping"];
    if (e.is_string()) {
      LUMEN_CHECK(e.get<std::string>() == "never", "early_stopping '", e.get<std::string>(), "' (true, false or never)");
      p.early_stopping = BeamSearchParams::EarlyStopping::Never;
    } else if (e.is_boolean() && e.get<bool>()) {
      p.early_stopping = BeamSearchParams::EarlyStopping::True;
    }
  }
  for (const char* key : {"eos_token_id_used", "eos_token_id"})
    if (g.contains(key) && g[key].is_number_integer()) {
      p.eos_ids = {g[key].get<int64_t>()};
      break;
    }
  return p;
}

void add_generation_outputs(TensorMap& out, const std::vector<int64_t>& seq, int64_t prompt_len,
                            const std::vector<std::vector<float>>& steps) {
  const int64_t n = static_cast<int64_t>(seq.size());
  out["sequences"] = Tensor::from_ids(seq, {1, n});
  out["new_token_ids"] = Tensor::from_ids(std::vector<int64_t>(seq.begin() + prompt_len, seq.end()), {1, n - prompt_len});
  if (!steps.empty()) {
    const int64_t V = static_cast<int64_t>(steps[0].size()), S = static_cast<int64_t>(steps.size());
    Tensor t = Tensor::zeros({1, S, V});
    for (int64_t i = 0; i < S; ++i)
      std::memcpy(t.data<float>() + i * V, steps[static_cast<size_t>(i)].data(), static_cast<size_t>(V) * sizeof(float));
    out["step_logits"] = t;
  }
}

}  // namespace lumen
