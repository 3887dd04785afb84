#include "families/blip/blip.h"

#include <cmath>
#include <cstring>

#include "families/family_util.h"
#include "formats/json_config.h"

namespace lumen {

BlipConfig BlipConfig::from_hf(const nlohmann::json& j, const std::string& path) {
  JsonView v(&j, path);
  BlipConfig c;
  c.vision = BlipVisionConfig::from_hf(v.child("vision_config"));
  JsonView t = v.child("text_config");
  c.text = BertConfig::from_hf(t);
  c.bos_id = t.get_int("bos_token_id", 30522);
  c.sep_id = t.get_int("sep_token_id", 102);
  c.pad_id = t.get_int("pad_token_id", 0);
  c.embed_dim = v.get_int("image_text_hidden_size", 256);
  LUMEN_CHECK(c.text.encoder_dim == c.vision.encoder.dim, t.field("encoder_hidden_size"), ": ", c.text.encoder_dim,
              " differs from the vision hidden_size ", c.vision.encoder.dim);
  if (v.has("architectures") && v.raw()["architectures"].is_array() && !v.raw()["architectures"].empty())
    c.architecture = v.raw()["architectures"][0].get<std::string>();
  return c;
}

std::string BlipModel::kind() const {
  if (can_answer()) return "question answering";
  if (can_caption()) return "captioning";
  return "retrieval";
}

void BlipModel::visit(ParamVisitor& v) {
  ParamScope root(v);
  // The architecture says which heads exist; checkpoints without it are read by what they hold.
  const std::string& a = cfg.architecture;
  bool decoder = a == "BlipForConditionalGeneration" || a == "BlipForQuestionAnswering";
  bool encoder = a == "BlipForImageTextRetrieval" || a == "BlipForQuestionAnswering";
  if (a.empty() || (!decoder && !encoder)) {
    decoder = root.has("text_decoder.bert.embeddings.word_embeddings.weight");
    encoder = root.has("text_encoder.embeddings.word_embeddings.weight");
  }
  LUMEN_CHECK(decoder || encoder, "BLIP checkpoint has neither text_encoder nor text_decoder weights");
  vision.visit(root.sub("vision_model"), cfg.vision);
  if (encoder) {
    text_encoder = std::make_unique<BertTextModel>();
    text_encoder->visit(root.sub("text_encoder"), cfg.text);
  }
  if (decoder) {
    text_decoder = std::make_unique<BertTextModel>();
    text_decoder->visit(root.sub("text_decoder").sub("bert"), cfg.text);
    lm_head.visit(root.sub("text_decoder").sub("cls").sub("predictions"), cfg.text, text_decoder->word_embeddings);
  }
  if (encoder && !decoder) {  // BlipForImageTextRetrieval
    itm_head.visit(root.sub("itm_head"), cfg.text.dim, 2);
    vision_proj.visit(root.sub("vision_proj"), cfg.vision.encoder.dim, cfg.embed_dim);
    text_proj.visit(root.sub("text_proj"), cfg.text.dim, cfg.embed_dim);
  }
}

Tensor BlipModel::image_embeds(const Tensor& pixel_values) const { return vision.forward(pixel_values); }

Tensor BlipModel::decoder_logits(const int64_t* ids, int64_t B, int64_t L, const Tensor& memory, int64_t Lm) const {
  LUMEN_CHECK(text_decoder, "this BLIP checkpoint (", kind(), ") has no text decoder");
  AttentionSource src{&memory, Lm, nullptr};
  Tensor h = text_decoder->forward(ids, B, L, nullptr, /*causal=*/true, src);  // [B*L, D]
  return lm_head.forward(h.data<float>(), B * L);                               // [B*L, V]
}

Tensor BlipModel::encode_text(const Tensor& input_ids, const Tensor& attention_mask, const Tensor* image) const {
  LUMEN_CHECK(text_encoder, "this BLIP checkpoint (", kind(), ") has no text encoder");
  LUMEN_CHECK(input_ids.ndim() == 2, "input_ids must be [B, L], got ", input_ids.describe());
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1);
  LUMEN_CHECK(!attention_mask.defined() || attention_mask.shape() == input_ids.shape(), "attention_mask ",
              attention_mask.describe(), " does not match input_ids ", input_ids.describe());
  AttentionSource src;
  if (image) {
    LUMEN_CHECK(image->ndim() == 3 && image->dim(0) == B, "the text encoder needs one image per text: ", B,
                " texts, image features ", image->describe());
    src = AttentionSource{image, image->dim(1), nullptr};
  }
  return text_encoder->forward(input_ids.data<int64_t>(), B, L,
                               attention_mask.defined() ? attention_mask.data<int64_t>() : nullptr, false, src);
}

Tensor BlipModel::itm_logits(const Tensor& image_embeds, const Tensor& input_ids, const Tensor& attention_mask,
                             Tensor* question_embeds) const {
  LUMEN_CHECK(can_match(), "this BLIP checkpoint (", kind(), ") has no image-text matching head");
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1), D = cfg.text.dim;
  Tensor h = encode_text(input_ids, attention_mask, &image_embeds);  // [B*L, D]
  Tensor cls = Tensor::zeros({B, D});
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(cls.data<float>() + b * D, h.data<float>() + b * L * D, static_cast<size_t>(D) * sizeof(float));
  if (question_embeds) *question_embeds = h.reshape({B, L, D});
  return itm_head.forward(cls);  // [B, 2]
}

Tensor BlipModel::contrastive_image_embeds(const Tensor& image_embeds) const {
  LUMEN_CHECK(can_match(), "this BLIP checkpoint (", kind(), ") has no contrastive projections");
  LUMEN_CHECK(image_embeds.ndim() == 3, "image features must be [I, T, Dv], got ", image_embeds.describe());
  const int64_t I = image_embeds.dim(0), T = image_embeds.dim(1), Dv = image_embeds.dim(2), P = cfg.embed_dim;
  Tensor img_cls = Tensor::zeros({I, Dv});
  for (int64_t i = 0; i < I; ++i)
    std::memcpy(img_cls.data<float>() + i * Dv, image_embeds.data<float>() + i * T * Dv,
                static_cast<size_t>(Dv) * sizeof(float));
  Tensor img = vision_proj.forward(img_cls);  // [I, P]
  ops::l2_normalize_rows(img.data<float>(), I, P);
  return img;
}

Tensor BlipModel::contrastive_text_embeds(const Tensor& input_ids, const Tensor& attention_mask,
                                          Tensor* text_hidden) const {
  LUMEN_CHECK(can_match(), "this BLIP checkpoint (", kind(), ") has no contrastive projections");
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1), D = cfg.text.dim, P = cfg.embed_dim;
  Tensor h = encode_text(input_ids, attention_mask, nullptr);  // [B*L, D], no cross-attention
  if (text_hidden) *text_hidden = h.reshape({B, L, D});
  Tensor txt_cls = Tensor::zeros({B, D});
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(txt_cls.data<float>() + b * D, h.data<float>() + b * L * D, static_cast<size_t>(D) * sizeof(float));
  Tensor txt = text_proj.forward(txt_cls);  // [B, P]
  ops::l2_normalize_rows(txt.data<float>(), B, P);
  return txt;
}

Tensor BlipModel::itc_scores(const Tensor& image_embeds, const Tensor& input_ids, const Tensor& attention_mask,
                             Tensor* text_embeds) const {
  // The same embeddings `lumen search` indexes and queries with, so the blip_itc fixture checks them.
  Tensor img = contrastive_image_embeds(image_embeds);                           // [I, P]
  Tensor txt = contrastive_text_embeds(input_ids, attention_mask, text_embeds);  // [B, P]
  const int64_t I = img.dim(0), B = txt.dim(0), P = cfg.embed_dim;
  Tensor sim = Tensor::zeros({I, B});
  ops::gemm(false, true, I, B, P, 1.f, img.data<float>(), P, txt.data<float>(), P, 0.f, sim.data<float>(), B);
  return sim;
}

std::vector<int64_t> BlipModel::decode(const Tensor& memory, int64_t Lm, const std::vector<int64_t>& prompt,
                                       const BlipDecodeOptions& o,
                                       std::vector<std::vector<float>>* step_logits) const {
  const int64_t Dm = memory.dim(-1), V = cfg.text.vocab_size;
  LUMEN_CHECK(static_cast<int64_t>(prompt.size()) + o.search.max_new_tokens <= cfg.text.max_positions, "prompt of ",
              prompt.size(), " tokens plus ", o.search.max_new_tokens, " new tokens exceeds max_position_embeddings ",
              cfg.text.max_positions);
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  Tensor repeated;  // uncached path: memory repeated once per running sequence
  NextTokenLogitsFn rerun = [&](const std::vector<std::vector<int64_t>>& seqs, const std::vector<int64_t>&) {
    const int64_t n = static_cast<int64_t>(seqs.size()), L = static_cast<int64_t>(seqs[0].size());
    if (!repeated.defined() || repeated.dim(0) != n * Lm) {
      repeated = Tensor::zeros({n * Lm, Dm});
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(repeated.data<float>() + i * Lm * Dm, memory.data<float>(),
                    static_cast<size_t>(Lm * Dm) * sizeof(float));
    }
    std::vector<int64_t> ids;
    for (const auto& s : seqs) ids.insert(ids.end(), s.begin(), s.end());
    Tensor all = decoder_logits(ids.data(), n, L, repeated, Lm);  // [n*L, V]
    Tensor last = Tensor::zeros({n, V});
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(last.data<float>() + i * V, all.data<float>() + (i * L + L - 1) * V,
                  static_cast<size_t>(V) * sizeof(float));
    return last;
  };
  // Cached path: the prompt runs once (row 0, copied to every beam), then each step feeds the
  // running sequences' last tokens as one batch.
  BertDecoderCache cache;
  NextTokenLogitsFn cached = [&](const std::vector<std::vector<int64_t>>& seqs, const std::vector<int64_t>& parent) {
    const int64_t n = static_cast<int64_t>(seqs.size()), D = cfg.text.dim;
    if (parent[0] < 0) {  // first step: every row is the prompt
      cache = text_decoder->new_decoder_cache(memory, n, prompt_len + o.search.max_new_tokens);
      Tensor h = text_decoder->forward_cached(prompt.data(), 1, prompt_len, cache);  // [L, D], row 0
      cache.broadcast_first_row();
      Tensor first = lm_head.forward(h.data<float>() + (prompt_len - 1) * D, 1);  // [1, V]
      Tensor out = Tensor::zeros({n, V});
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(out.data<float>() + i * V, first.data<float>(), static_cast<size_t>(V) * sizeof(float));
      return out;
    }
    cache.reorder(parent);
    std::vector<int64_t> last(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) last[static_cast<size_t>(i)] = seqs[static_cast<size_t>(i)].back();
    Tensor h = text_decoder->forward_cached(last.data(), n, 1, cache);  // [n, D]
    return lm_head.forward(h.data<float>(), n);                        // [n, V]
  };
  const NextTokenLogitsFn& next = o.use_cache ? cached : rerun;
  BeamSearchParams search = o.search;
  search.eos_ids = o.stop_at_eos ? std::vector<int64_t>{cfg.sep_id} : std::vector<int64_t>{};
  return best_sequence(prompt, search, next, step_logits);
}

std::vector<int64_t> BlipModel::caption(const Tensor& pixel_values, const std::vector<int64_t>& prompt,
                                        const BlipDecodeOptions& o,
                                        std::vector<std::vector<float>>* step_logits) const {
  LUMEN_CHECK(text_decoder, "this BLIP checkpoint (", kind(), ") cannot caption");
  LUMEN_CHECK(pixel_values.ndim() == 4 && pixel_values.dim(0) == 1, "caption takes one image, got ",
              pixel_values.describe());
  return caption_image(image_embeds(pixel_values), prompt, o, step_logits);
}

std::vector<int64_t> BlipModel::caption_image(const Tensor& img, const std::vector<int64_t>& prompt,
                                              const BlipDecodeOptions& o,
                                              std::vector<std::vector<float>>* step_logits) const {
  LUMEN_CHECK(text_decoder, "this BLIP checkpoint (", kind(), ") cannot caption");
  LUMEN_CHECK(img.ndim() == 3 && img.dim(0) == 1, "caption takes one image's embeddings [1, T, D], got ",
              img.describe());
  LUMEN_CHECK(!prompt.empty(), "the decoder prompt must start with the [DEC] token ", cfg.bos_id);
  return decode(img.reshape({img.dim(1), img.dim(2)}), img.dim(1), prompt, o, step_logits);  // img: [1, T, Dv]
}

std::vector<int64_t> BlipModel::answer(const Tensor& pixel_values, const Tensor& question_ids,
                                       const Tensor& question_mask, const BlipDecodeOptions& o,
                                       std::vector<std::vector<float>>* step_logits, Tensor* question_embeds) const {
  LUMEN_CHECK(can_answer(), "this BLIP checkpoint (", kind(), ") does not answer questions");
  LUMEN_CHECK(question_ids.ndim() == 2 && question_ids.dim(0) == 1, "one question [1, L] expected, got ",
              question_ids.describe());
  Tensor img = image_embeds(pixel_values);                       // [1, T, Dv]
  Tensor q = encode_text(question_ids, question_mask, &img);     // [Lq, Dt]
  if (question_embeds) *question_embeds = q.reshape({1, q.dim(0), q.dim(1)});
  // BlipForQuestionAnswering.generate: the answer decoder starts from [bos] and attends to
  // every question position (an all-ones mask).
  return decode(q, q.dim(0), {cfg.bos_id}, o, step_logits);
}

namespace {

Tensor need(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  LUMEN_CHECK(it != in.end(), "fixture input '", name, "' is missing");
  return it->second;
}

Tensor optional_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? Tensor() : it->second;
}

BlipDecodeOptions decode_options(const nlohmann::json& meta) {
  BlipDecodeOptions o;
  o.search = fixture_search_params(meta);
  return o;
}


TensorMap blip_fixture(const Model& model, const std::string& task, const TensorMap& in, const nlohmann::json& meta) {
  const auto* m = dynamic_cast<const BlipModel*>(&model);
  LUMEN_CHECK(m, "family ", model.family(), " is not BLIP");
  TensorMap out;
  Tensor pv = need(in, "pixel_values"), ids = need(in, "input_ids");
  if (task == "caption_forward") {
    Tensor img = m->image_embeds(pv);  // [B, T, Dv]
    const int64_t B = ids.dim(0), L = ids.dim(1), T = img.dim(1);
    Tensor logits = m->decoder_logits(ids.data<int64_t>(), B, L, img.reshape({B * T, img.dim(2)}), T);
    out["logits"] = logits.reshape({B, L, m->cfg.text.vocab_size});
    out["image_embeds"] = img;
    return out;
  }
  if (task == "image_text_matching" || task == "image_text_cosine") {
    Tensor img = m->image_embeds(pv);
    Tensor q;
    out["itm_score"] = task == "image_text_matching" ? m->itm_logits(img, ids, optional_input(in, "attention_mask"), &q)
                                                     : m->itc_scores(img, ids, optional_input(in, "attention_mask"), &q);
    out["vision_last_hidden_state"] = img;
    out["question_embeds"] = q;
    return out;
  }
  LUMEN_CHECK(task == "greedy_generate" || task == "beam_generate", "task '", task, "' is not supported by BLIP");
  const BlipDecodeOptions o = decode_options(meta);
  std::vector<std::vector<float>> steps;
  std::vector<int64_t> seq;
  int64_t prompt_len = 0;
  if (m->can_answer()) {
    Tensor q;
    seq = m->answer(pv, ids, optional_input(in, "attention_mask"), o, &steps, &q);
    out["question_embeds"] = q;
    prompt_len = 1;
  } else {
    // BlipForConditionalGeneration.generate: input_ids[:, 0] becomes [DEC] and the last token
    // ([SEP]) is dropped.
    LUMEN_CHECK(ids.ndim() == 2 && ids.dim(0) == 1 && ids.dim(1) >= 2, "caption input_ids must be [1, L >= 2]");
    std::vector<int64_t> prompt(ids.data<int64_t>(), ids.data<int64_t>() + ids.dim(1) - 1);
    prompt[0] = m->cfg.bos_id;
    prompt_len = static_cast<int64_t>(prompt.size());
    seq = m->caption(pv, prompt, o, &steps);
  }
  add_generation_outputs(out, seq, prompt_len, steps);
  return out;
}

}  // namespace

FamilySpec blip_family() {
  FamilySpec f;
  f.name = "blip";
  f.description = "BLIP (ViT + BERT with cross-attention): captioning, visual question answering, image-text matching";
  f.model_types = {"blip"};
  f.architectures = {"BlipForConditionalGeneration", "BlipForImageTextRetrieval", "BlipForQuestionAnswering"};
  f.tiny_archs = {"tiny", "tiny-retrieval", "tiny-vqa", "blip-base"};
  f.default_tokenizer = "bert";
  f.load = load_checkpoint_model_with<BlipModel>;
  f.run_fixture = blip_fixture;
  f.make_tiny = make_tiny_blip;
  return f;
}

}  // namespace lumen

namespace lumen {

void make_tiny_blip(const MakeTinyOptions& o) {
  struct Preset {
    int64_t vd, vl, vh, vm, image, patch, td, tl, th, tm;
    const char* arch;
  };
  Preset p{32, 2, 4, 64, 32, 8, 32, 2, 4, 64, "BlipForConditionalGeneration"};
  if (o.arch == "tiny-retrieval") {
    p.arch = "BlipForImageTextRetrieval";
  } else if (o.arch == "tiny-vqa") {
    p.arch = "BlipForQuestionAnswering";
  } else if (o.arch == "blip-base") {  // Salesforce/blip-image-captioning-base
    p = {768, 12, 12, 3072, 384, 16, 768, 12, 12, 3072, "BlipForConditionalGeneration"};
  } else {
    LUMEN_CHECK(o.arch == "tiny", "blip has no --arch '", o.arch, "' (tiny, tiny-retrieval, tiny-vqa, blip-base)");
  }
  // BLIP's tokenizer is BERT's plus [DEC] (the decoders' bos) and [ENC] right after it.
  const int64_t base_vocab = o.vocab_size > 0 ? o.vocab_size : 30522;
  const int64_t dec = base_vocab, vocab = base_vocab + 2;
  const int64_t sep = o.token_ids.value("eos", int64_t{102});
  nlohmann::json vision = {{"model_type", "blip_vision_model"}, {"hidden_size", p.vd}, {"num_hidden_layers", p.vl},
                           {"num_attention_heads", p.vh}, {"intermediate_size", p.vm}, {"image_size", p.image},
                           {"patch_size", p.patch}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-5}};
  nlohmann::json text = {{"model_type", "blip_text_model"}, {"vocab_size", vocab}, {"hidden_size", p.td},
                         {"num_hidden_layers", p.tl}, {"num_attention_heads", p.th}, {"intermediate_size", p.tm},
                         {"encoder_hidden_size", p.vd}, {"max_position_embeddings", 512}, {"hidden_act", "gelu"},
                         {"layer_norm_eps", 1e-12}, {"is_decoder", true}, {"bos_token_id", dec},
                         {"sep_token_id", sep}, {"pad_token_id", o.token_ids.value("pad", int64_t{0})},
                         {"eos_token_id", 2}};
  nlohmann::json cfg = {{"architectures", {p.arch}}, {"model_type", "blip"}, {"image_text_hidden_size", 256},
                        {"projection_dim", 512}, {"tie_word_embeddings", true}, {"vision_config", vision},
                        {"text_config", text},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  BlipModel m;
  m.cfg = BlipConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  const int64_t S = p.image;
  nlohmann::json pre = clip_normalized_preprocessor("BlipImageProcessor", {{"size", {{"height", S}, {"width", S}}}});
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
}

}  // namespace lumen

namespace lumen {

Tensor BlipContrastiveEncoder::image_embeds(const Tensor& pixel_values) const {
  return m_.contrastive_image_embeds(m_.image_embeds(pixel_values));
}

Tensor BlipContrastiveEncoder::text_embeds(const Tensor& input_ids, const Tensor& attention_mask) const {
  return m_.contrastive_text_embeds(input_ids, attention_mask);
}

int64_t BlipContrastiveEncoder::text_pad_id() const { return m_.cfg.pad_id; }
int64_t BlipContrastiveEncoder::max_text_length() const { return m_.cfg.text.max_positions; }
int64_t BlipContrastiveEncoder::embedding_dim() const { return m_.cfg.embed_dim; }

Tensor BlipContrastiveEncoder::match_probabilities(const Tensor& pixel_values, const Tensor& input_ids,
                                                   const Tensor& attention_mask) const {
  LUMEN_CHECK(input_ids.ndim() == 2 && input_ids.dim(0) == 1, "one text [1, L] expected, got ", input_ids.describe());
  Tensor img = m_.image_embeds(pixel_values);  // [B, T, Dv]
  const int64_t B = img.dim(0), L = input_ids.dim(1);
  // The ITM head pairs text row i with image i: the one text, once per image.
  std::vector<int64_t> ids, mask;
  for (int64_t b = 0; b < B; ++b) {
    ids.insert(ids.end(), input_ids.data<int64_t>(), input_ids.data<int64_t>() + L);
    if (attention_mask.defined())
      mask.insert(mask.end(), attention_mask.data<int64_t>(), attention_mask.data<int64_t>() + L);
  }
  Tensor mask_t = attention_mask.defined() ? Tensor::from_ids(mask, {B, L}) : Tensor();
  Tensor logits = m_.itm_logits(img, Tensor::from_ids(ids, {B, L}), mask_t);  // [B, 2]
  Tensor p = Tensor::zeros({B});
  for (int64_t b = 0; b < B; ++b) {
    const float l0 = logits.data<float>()[2 * b], l1 = logits.data<float>()[2 * b + 1];
    p.data<float>()[b] = 1.f / (1.f + std::exp(l0 - l1));  // softmax(itm logits)[1]
  }
  return p;
}

TensorMap BlipContrastiveEncoder::forward_all(const Tensor& pixel_values, const Tensor& input_ids,
                                              const Tensor& attention_mask) const {
  TensorMap out;
  Tensor img = m_.image_embeds(pixel_values), text_hidden;
  out["vision_last_hidden_state"] = img;
  out["image_embeds"] = m_.contrastive_image_embeds(img);
  out["text_embeds"] = m_.contrastive_text_embeds(input_ids, attention_mask, &text_hidden);
  out["text_last_hidden_state"] = text_hidden;
  const int64_t I = out["image_embeds"].dim(0), T = out["text_embeds"].dim(0), P = embedding_dim();
  Tensor sim = Tensor::zeros({I, T});
  ops::gemm(false, true, I, T, P, 1.f, out["image_embeds"].data<float>(), P, out["text_embeds"].data<float>(), P, 0.f,
            sim.data<float>(), T);
  out["logits_per_image"] = sim;
  return out;
}

}  // namespace lumen
