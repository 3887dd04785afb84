#include "families/kosmos2/kosmos2.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "core/mapped_file.h"
#include "families/family_util.h"
#include "formats/json_config.h"
#include "kernels/ops.h"
#include "text/tokenizer.h"

namespace lumen {

Kosmos2TextConfig Kosmos2TextConfig::from_hf(const JsonView& t, bool tie_default) {
  Kosmos2TextConfig c;
  c.vocab_size = t.get_int("vocab_size", 65037);
  c.dim = t.get_int("embed_dim", 2048);
  c.layers = t.get_int("layers", 24);
  c.heads = t.get_int("attention_heads", 32);
  c.ffn_dim = t.get_int("ffn_dim", 8192);
  c.max_positions = t.get_int("max_position_embeddings", 2048);
  c.eps = static_cast<float>(t.get_double("layer_norm_eps", 1e-5));
  c.act = parse_activation(t.get_string("activation_function", "gelu"), t.field("activation_function"));
  c.scale_embedding = t.get_bool("scale_embedding", true);
  c.tie_word_embeddings = t.get_bool("tie_word_embeddings", tie_default);
  c.pad_token_id = t.get_int("pad_token_id", 1);
  c.bos_token_id = t.get_int("bos_token_id", 0);
  c.eos_token_id = t.get_int("eos_token_id", 2);
  LUMEN_CHECK(c.vocab_size > 0 && c.dim > 0 && c.layers >= 0 && c.heads > 0 && c.ffn_dim > 0, t.where(),
              ": vocab_size, embed_dim, attention_heads and ffn_dim must be positive");
  LUMEN_CHECK(c.dim % c.heads == 0, t.field("embed_dim"), ": ", c.dim, " is not divisible by attention_heads ",
              c.heads);
  LUMEN_CHECK(c.pad_token_id >= 0, t.field("pad_token_id"), ": the position scheme needs a padding id >= 0");
  return c;
}

Kosmos2Config Kosmos2Config::from_hf(const nlohmann::json& j, const std::string& path) {
  JsonView v(&j, path);
  Kosmos2Config c;
  c.vision = VitConfig::from_hf(v.child("vision_config"));
  c.text = Kosmos2TextConfig::from_hf(v.child("text_config"), v.get_bool("tie_word_embeddings", true));
  c.latent_query_num = v.get_int("latent_query_num", 64);
  LUMEN_CHECK(c.latent_query_num > 0, v.field("latent_query_num"), ": must be positive");
  return c;
}

void Kosmos2Attention::visit(const ParamScope& s, int64_t d, int64_t num_heads, bool with_inner_ln, float eps) {
  dim = d;
  heads = num_heads;
  q_proj.visit(s.sub("q_proj"), d, d);
  k_proj.visit(s.sub("k_proj"), d, d);
  v_proj.visit(s.sub("v_proj"), d, d);
  out_proj.visit(s.sub("out_proj"), d, d);
  inner_ln = with_inner_ln;
  if (with_inner_ln) inner_attn_ln.visit(s.sub("inner_attn_ln"), d, eps);
}

void Kosmos2TextLayer::visit(const ParamScope& s, const Kosmos2TextConfig& c) {
  self_attn.visit(s.sub("self_attn"), c.dim, c.heads, /*with_inner_ln=*/true, c.eps);
  self_attn_layer_norm.visit(s.sub("self_attn_layer_norm"), c.dim, c.eps);
  ParamScope ffn = s.sub("ffn");
  fc1.visit(ffn.sub("fc1"), c.dim, c.ffn_dim);
  fc2.visit(ffn.sub("fc2"), c.ffn_dim, c.dim);
  ffn_layernorm.visit(ffn.sub("ffn_layernorm"), c.ffn_dim, c.eps);
  final_layer_norm.visit(s.sub("final_layer_norm"), c.dim, c.eps);
}

void Kosmos2TextModel::visit(const ParamScope& model, const ParamScope& head, const Kosmos2TextConfig& c) {
  cfg = c;
  model("embed_tokens.weight", {c.vocab_size, c.dim}, Init::Matrix, &embed_tokens);
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) layers[static_cast<size_t>(i)].visit(model.sub("layers." + std::to_string(i)), c);
  layer_norm.visit(model.sub("layer_norm"), c.dim, c.eps);
  // Tied checkpoints may store lm_head anyway (a copy); the embedding is the one to use.
  if (c.tie_word_embeddings || !head.has("lm_head.weight")) {
    LUMEN_CHECK(c.tie_word_embeddings, head.prefix(), "lm_head.weight: missing and tie_word_embeddings is false");
    lm_head.in = c.dim;
    lm_head.out = c.vocab_size;
    lm_head.weight = ops::make_linear_weight(embed_tokens, WeightFormat::F32);
  } else {
    lm_head.visit(head.sub("lm_head"), c.dim, c.vocab_size, false);
  }
}

KvCache Kosmos2TextModel::new_cache(int64_t capacity) const {
  KvCache c;
  c.capacity = capacity;
  c.kv_dim = cfg.dim;
  for (int64_t i = 0; i < cfg.layers; ++i) {
    c.k.push_back(Tensor::zeros({capacity, cfg.dim}));
    c.v.push_back(Tensor::zeros({capacity, cfg.dim}));
  }
  return c;
}

// embed_tokens is nn.Embedding(padding_idx=pad_token_id), whose padding row transformers
// zeroes when it initialises the loaded model (the reference's outputs have it at zero, and so
// does the tied LM head's pad column). The checkpoint's row is ignored here rather than copied
// and patched, so the (possibly mmapped) table stays shared.
Tensor Kosmos2TextModel::embed(const int64_t* ids, int64_t n) const {
  Tensor out = Tensor::zeros({n, cfg.dim});
  ops::embedding(embed_tokens, ids, n, out.data<float>());
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] == cfg.pad_token_id) std::fill(out.data<float>() + i * cfg.dim, out.data<float>() + (i + 1) * cfg.dim, 0.f);
  return out;
}

void kosmos2_sinusoidal_position(int64_t pos, int64_t dim, int64_t padding_idx, float* out) {
  std::fill(out, out + dim, 0.f);
  if (pos == padding_idx) return;
  // get_embedding: emb = exp(arange(half) * -(log(10000) / (half - 1))); [sin(p*emb), cos(p*emb)]
  const int64_t half = dim / 2;
  const float step = half > 1 ? static_cast<float>(std::log(10000.0) / static_cast<double>(half - 1)) : 0.f;
  for (int64_t k = 0; k < half; ++k) {
    const float freq = std::exp(static_cast<float>(k) * -step);
    const float a = static_cast<float>(pos) * freq;
    out[k] = std::sin(a);
    out[half + k] = std::cos(a);
  }
}

Tensor Kosmos2TextModel::forward(const Tensor& embeds, const int64_t* ids, KvCache& cache,
                                 const int64_t* key_keep) const {
  const int64_t L = embeds.dim(0), D = cfg.dim, past = cache.length;
  LUMEN_CHECK(embeds.ndim() == 2 && embeds.dim(1) == D, "KOSMOS-2 decoder expects embeddings [L, ", D, "], got ",
              embeds.describe());
  LUMEN_CHECK(past + L <= cache.capacity, "KV cache holds ", cache.capacity, " positions; ", past, " + ", L,
              " do not fit");
  // forward_embedding: inputs_embeds * embed_scale + positions.
  // [L, D]
  Tensor h = embeds.clone();
  const float scale = cfg.scale_embedding ? static_cast<float>(std::sqrt(static_cast<double>(D))) : 1.f;
  float* hp = h.data<float>();
  std::vector<float> pos_row(static_cast<size_t>(D));
  int64_t non_pad = 0;
  for (int64_t i = 0; i < L; ++i) {
    // create_position_ids_from_input_ids: padding keeps padding_idx; others count non-padding
    // tokens of this chunk, offset by the cache length and padding_idx.
    const bool pad = ids[i] == cfg.pad_token_id;
    if (!pad) ++non_pad;
    const int64_t pos = pad ? cfg.pad_token_id : cfg.pad_token_id + non_pad + past;
    kosmos2_sinusoidal_position(pos, D, cfg.pad_token_id, pos_row.data());
    float* r = hp + i * D;
    for (int64_t j = 0; j < D; ++j) r[j] = r[j] * scale + pos_row[static_cast<size_t>(j)];
  }
  const int64_t H = cfg.heads, hd = D / H;
  const float attn_scale = 1.f / std::sqrt(static_cast<float>(hd));
  for (size_t li = 0; li < layers.size(); ++li) {
    const Kosmos2TextLayer& l = layers[li];
    // Self-attention block: h += out_proj(inner_attn_ln(attn(self_attn_layer_norm(h)))).
    Tensor x = l.self_attn_layer_norm.forward(h);  // [L, D]
    Tensor q = l.self_attn.q_proj.forward(x);
    float* kc = cache.k[li].data<float>();
    float* vc = cache.v[li].data<float>();
    l.self_attn.k_proj.forward(x.data<float>(), L, kc + past * D);
    l.self_attn.v_proj.forward(x.data<float>(), L, vc + past * D);
    Tensor ctx = Tensor::zeros({L, D});
    AttentionMask mask;
    mask.causal = true;
    mask.causal_offset = past;
    mask.key_keep = key_keep;
    ops::attention(q.data<float>(), D, kc, D, vc, D, L, past + L, H, hd, attn_scale, mask, ctx.data<float>(), D);
    Tensor a = l.self_attn.out_proj.forward(l.self_attn.inner_attn_ln.forward(ctx));
    ops::add_inplace(hp, a.data<float>(), L * D);
    // FFN block: h += fc2(ffn_layernorm(act(fc1(final_layer_norm(h))))).
    Tensor f = l.fc1.forward(l.final_layer_norm.forward(h));  // [L, ffn_dim]
    apply_activation(cfg.act, f.data<float>(), f.numel());
    Tensor o = l.fc2.forward(l.ffn_layernorm.forward(f));  // [L, D]
    ops::add_inplace(hp, o.data<float>(), L * D);
  }
  cache.length = past + L;
  layer_norm.forward(hp, L, hp);
  return h;
}

Tensor Kosmos2TextModel::logits(const float* hidden, int64_t rows) const {
  Tensor out = Tensor::zeros({rows, cfg.vocab_size});
  lm_head.forward(hidden, rows, out.data<float>());
  // Tied head: the zeroed padding row of the embedding gives a zero logit.
  if (cfg.tie_word_embeddings && cfg.pad_token_id < cfg.vocab_size)
    for (int64_t r = 0; r < rows; ++r) out.data<float>()[r * cfg.vocab_size + cfg.pad_token_id] = 0.f;
  return out;
}

namespace {

// Checkpoint layouts: transformers' save format has vision_model.model / text_model.model /
// text_model.lm_head / image_to_text_projection at the top; some re-saves nest them under "model.".
std::string kosmos2_prefix(const ParamScope& root) {
  if (!root.has("text_model.model.embed_tokens.weight") && root.has("model.text_model.model.embed_tokens.weight"))
    return "model.";
  return "";
}

ParamScope scope_path(const ParamScope& root, const std::string& path) {
  ParamScope s = root;
  size_t start = 0;
  while (start < path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string::npos) dot = path.size();
    if (dot > start) s = s.sub(path.substr(start, dot - start));
    start = dot + 1;
  }
  return s;
}

}  // namespace

void Kosmos2Model::visit(ParamVisitor& v) {
  ParamScope root(v);
  const std::string p = kosmos2_prefix(root);
  ParamScope vision_scope = scope_path(root, p + "vision_model.model");
  vision.visit(vision_scope, cfg.vision);
  ParamScope proj = scope_path(root, p + "image_to_text_projection");
  const int64_t Dv = cfg.vision.encoder.dim, Dt = cfg.text.dim;
  dense.visit(proj.sub("dense"), Dv, Dt);
  proj("latent_query", {cfg.latent_query_num, Dt}, Init::Matrix, &latent_query);
  x_attn.visit(proj.sub("x_attn"), Dt, cfg.text.heads, /*with_inner_ln=*/false, cfg.text.eps);
  text.visit(scope_path(root, p + "text_model.model"), scope_path(root, p + "text_model"), cfg.text);
}

Tensor Kosmos2Model::encode_image(const Tensor& pixel_values) const {
  const int64_t S = cfg.vision.image_size;
  LUMEN_CHECK(pixel_values.ndim() == 4 && pixel_values.dim(0) == 1 && pixel_values.dim(1) == 3 &&
                  pixel_values.dim(2) == S && pixel_values.dim(3) == S,
              "KOSMOS-2 expects pixel_values [1, 3, ", S, ", ", S, "], got ", pixel_values.describe());
  const int64_t T = cfg.vision.num_positions(), Dv = cfg.vision.encoder.dim, Dt = cfg.text.dim;
  const int64_t Q = cfg.latent_query_num;
  // [1, T, Dv] -> post_layernorm on every token (not only CLS), then F.normalize(dim=-1).
  Tensor feats = vision.forward(pixel_values).reshape({T, Dv});
  Tensor normed = vision.post_layernorm.forward(feats);
  ops::l2_normalize_rows(normed.data<float>(), T, Dv);
  // Kosmos2ImageToTextProjection: keys/values = [dense(features); latent_query], queries =
  // latent_query; no mask, no inner LayerNorm.
  Tensor hidden = dense.forward(normed);  // [T, Dt]
  Tensor kv = Tensor::zeros({T + Q, Dt});
  std::memcpy(kv.data<float>(), hidden.data<float>(), static_cast<size_t>(T * Dt) * sizeof(float));
  std::memcpy(kv.data<float>() + T * Dt, latent_query.data<float>(), static_cast<size_t>(Q * Dt) * sizeof(float));
  Tensor q = x_attn.q_proj.forward(latent_query);  // [Q, Dt]
  Tensor k = x_attn.k_proj.forward(kv), v = x_attn.v_proj.forward(kv);  // [T+Q, Dt]
  const int64_t H = x_attn.heads, hd = Dt / H;
  Tensor ctx = Tensor::zeros({Q, Dt});
  ops::attention(q.data<float>(), Dt, k.data<float>(), Dt, v.data<float>(), Dt, Q, T + Q, H, hd,
                 1.f / std::sqrt(static_cast<float>(hd)), AttentionMask{}, ctx.data<float>(), Dt);
  return x_attn.out_proj.forward(ctx);  // [Q, Dt]
}

Tensor Kosmos2Model::prompt_embeddings(const std::vector<int64_t>& ids, const std::vector<int64_t>& image_mask,
                                       const Tensor& image_embeds) const {
  const int64_t L = static_cast<int64_t>(ids.size()), D = cfg.text.dim;
  LUMEN_CHECK(image_mask.empty() || image_mask.size() == ids.size(), "image_embeds_position_mask has ",
              image_mask.size(), " entries for ", L, " tokens");
  std::vector<int64_t> text_ids(ids);
  int64_t marked = 0;
  for (size_t i = 0; i < image_mask.size(); ++i)
    if (image_mask[i] != 0) {
      text_ids[i] = 0;  // overwritten below
      ++marked;
    }
  Tensor e = text.embed(text_ids.data(), L);
  const int64_t rows = image_embeds.defined() && image_embeds.numel() > 0 ? image_embeds.numel() / D : 0;
  LUMEN_CHECK(marked == rows, "image_embeds_position_mask marks ", marked, " positions but the image gives ", rows,
              " embeddings (latent_query_num ", cfg.latent_query_num, ")");
  int64_t r = 0;
  for (size_t i = 0; i < image_mask.size(); ++i)
    if (image_mask[i] != 0) {
      std::memcpy(e.data<float>() + static_cast<int64_t>(i) * D, image_embeds.data<float>() + r * D,
                  static_cast<size_t>(D) * sizeof(float));
      ++r;
    }
  return e;
}

std::vector<int64_t> Kosmos2Model::generate(const std::vector<int64_t>& ids, const std::vector<int64_t>& image_mask,
                                            const Tensor& image_embeds, const GenerateOptions& o) const {
  const int64_t L = static_cast<int64_t>(ids.size()), V = cfg.text.vocab_size, D = cfg.text.dim;
  LUMEN_CHECK(L > 0, "KOSMOS-2 generation needs a non-empty prompt");
  Tensor e = prompt_embeddings(ids, image_mask, image_embeds);
  const int64_t capacity = L + std::max<int64_t>(o.max_new_tokens, 1);
  KvCache cache = text.new_cache(capacity);
  // The prompt's padding stays hidden for the whole answer; new tokens are attended.
  std::vector<int64_t> keep;
  if (!o.attention_mask.empty()) {
    LUMEN_CHECK(static_cast<int64_t>(o.attention_mask.size()) == L, "KOSMOS-2: attention_mask has ",
                o.attention_mask.size(), " entries for ", L, " prompt tokens");
    keep = o.attention_mask;
    keep.resize(static_cast<size_t>(capacity), 1);
  }
  const int64_t* key_keep = keep.empty() ? nullptr : keep.data();
  Tensor h = text.forward(e, ids.data(), cache, key_keep);
  Tensor logits = text.logits(h.data<float>() + (L - 1) * D, 1);
  TokenSampler sampler(o.sampling);
  std::vector<int64_t> context = ids, out;
  std::vector<float> lg(static_cast<size_t>(V));
  for (int64_t t = 0; t < o.max_new_tokens; ++t) {
    if (o.on_step) o.on_step(t, logits.data<float>());
    std::memcpy(lg.data(), logits.data<float>(), static_cast<size_t>(V) * sizeof(float));
    if (t < o.min_new_tokens)
      for (int64_t id : o.eos_ids)
        if (id >= 0 && id < V) lg[static_cast<size_t>(id)] = -INFINITY;
    const int64_t next = sampler.sample(lg, context);
    if (std::find(o.eos_ids.begin(), o.eos_ids.end(), next) != o.eos_ids.end()) break;
    out.push_back(next);
    context.push_back(next);
    if (o.on_token && !o.on_token(next)) break;
    if (t + 1 == o.max_new_tokens) break;
    // Decode: the image mask is extended with zeros, so a new token is always a text token.
    Tensor x = text.embed(&next, 1);
    h = text.forward(x, &next, cache, key_keep);
    logits = text.logits(h.data<float>(), 1);
  }
  return out;
}

namespace {

Tensor input_or_empty(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? Tensor() : it->second;
}

std::vector<int64_t> ids_row(const Tensor& t, const char* name) {
  LUMEN_CHECK(t.defined() && t.ndim() == 2 && t.dim(0) == 1, "fixture needs ", name, " [1, L], got ",
              t.defined() ? t.describe() : std::string("nothing"));
  LUMEN_CHECK(t.dtype() == DType::I64, name, ": expected I64, got ", t.describe());
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

}  // namespace

TensorMap kosmos2_fixture(const Model& m, const std::string& task, const TensorMap& inputs,
                          const nlohmann::json& meta) {
  const auto* k = dynamic_cast<const Kosmos2Model*>(&m);
  LUMEN_CHECK(k, "family ", m.family(), " is not KOSMOS-2");
  const std::vector<int64_t> ids = ids_row(input_or_empty(inputs, "input_ids"), "input_ids");
  std::vector<int64_t> mask(ids.size(), 0);
  Tensor mask_t = input_or_empty(inputs, "image_embeds_position_mask");
  if (mask_t.defined()) mask = ids_row(mask_t, "image_embeds_position_mask");
  Tensor attn = input_or_empty(inputs, "attention_mask");
  std::vector<int64_t> attention_mask;
  if (attn.defined()) {
    attention_mask = ids_row(attn, "attention_mask");
    LUMEN_CHECK(attention_mask.size() == ids.size(), "KOSMOS-2 fixture: attention_mask has ", attention_mask.size(),
                " entries, input_ids ", ids.size());
    for (int64_t a : attention_mask) LUMEN_CHECK(a == 0 || a == 1, "KOSMOS-2 fixture: attention_mask holds ", a);
    if (std::all_of(attention_mask.begin(), attention_mask.end(), [](int64_t a) { return a == 1; }))
      attention_mask.clear();
  }
  Tensor pv = input_or_empty(inputs, "pixel_values");
  LUMEN_CHECK(pv.defined(), "KOSMOS-2 fixture needs pixel_values");
  const int64_t L = static_cast<int64_t>(ids.size()), V = k->cfg.text.vocab_size, D = k->cfg.text.dim;
  Tensor image_embeds = k->encode_image(pv);  // [Q, Dt]
  TensorMap out;
  if (task == "causal_lm_forward") {
    Tensor e = k->prompt_embeddings(ids, mask, image_embeds);
    KvCache cache = k->text.new_cache(L);
    Tensor h = k->text.forward(e, ids.data(), cache, attention_mask.empty() ? nullptr : attention_mask.data());
    out["logits"] = k->text.logits(h.data<float>(), L).reshape({1, L, V});
    out["image_embeds"] = image_embeds.reshape({1, image_embeds.dim(0), D});
    return out;
  }
  LUMEN_CHECK(task == "greedy_generate", "task '", task, "' is not supported by family kosmos2");
  const nlohmann::json gen = meta.value("generation", nlohmann::json::object());
  Kosmos2Model::GenerateOptions o;
  o.max_new_tokens = gen.value("max_new_tokens", int64_t{8});
  o.min_new_tokens = gen.value("min_new_tokens", int64_t{0});
  o.attention_mask = attention_mask;
  if (gen.contains("eos_token_id_used") && gen["eos_token_id_used"].is_number_integer())
    o.eos_ids = {gen["eos_token_id_used"].get<int64_t>()};
  Tensor step_logits = Tensor::zeros({1, o.max_new_tokens, V});
  o.on_step = [&](int64_t t, const float* lg) {
    std::memcpy(step_logits.data<float>() + t * V, lg, static_cast<size_t>(V) * sizeof(float));
  };
  std::vector<int64_t> generated = k->generate(ids, mask, image_embeds, o);
  std::vector<int64_t> sequence = ids;
  sequence.insert(sequence.end(), generated.begin(), generated.end());
  const int64_t n = static_cast<int64_t>(generated.size());
  out["sequences"] = Tensor::from_ids(sequence, {1, L + n});
  out["new_token_ids"] = Tensor::from_ids(generated, {1, n});
  out["step_logits"] = step_logits;  // rows past an early EOS stay zero
  return out;
}

Kosmos2Prompt kosmos2_prompt(const Tokenizer& tok, const Kosmos2Config& cfg, const std::string& text) {
  auto need = [&](const char* t) {
    auto id = tok.token_to_id(t);
    LUMEN_CHECK(id.has_value(), "KOSMOS-2 tokenizer has no '", t, "' token");
    return *id;
  };
  const int64_t boi = need("<image>"), eoi = need("</image>");
  const int64_t bos = tok.bos_id().value_or(cfg.text.bos_token_id);
  // first_image_token_id = unk_token_id + 1 (Kosmos2Processor.__call__).
  const int64_t first = tok.unk_id().value_or(3) + 1;
  Kosmos2Prompt p;
  p.ids = {bos, boi};
  for (int64_t q = 0; q < cfg.latent_query_num; ++q) p.ids.push_back(first + q);
  p.ids.push_back(eoi);
  p.image_mask.assign(p.ids.size(), 0);
  for (int64_t q = 0; q < cfg.latent_query_num; ++q) p.image_mask[static_cast<size_t>(2 + q)] = 1;
  // text.strip()
  size_t a = 0, b = text.size();
  while (a < b && std::isspace(static_cast<unsigned char>(text[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(text[b - 1]))) --b;
  Encoding enc = tok.encode(std::string_view(text).substr(a, b - a), /*add_special_tokens=*/false);
  for (int64_t id : enc.ids) {
    p.ids.push_back(id);
    p.image_mask.push_back(0);
  }
  return p;
}

void make_tiny_kosmos2(const MakeTinyOptions& o) {
  LUMEN_CHECK(o.arch == "tiny", "kosmos2 has no --arch '", o.arch, "' (tiny)");
  // Kosmos2Processor.__init__ adds these (lstrip, not special: decode keeps them).
  std::vector<std::string> markup = {"</doc>",   "<image>",  "</image>", "</chunk>",
                                     "</line>",  "<phrase>", "</phrase>", "<object>",
                                     "</object>", "</delimiter_of_multi_objects/>", "<grounding>"};
  for (int i = 0; i < 1024; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "<patch_index_%04d>", i);
    markup.push_back(buf);
  }
  std::vector<int64_t> ids = add_tokens(o.out_dir, markup, /*special=*/false, /*lstrip=*/true);
  // The position scheme needs a padding id that no real token uses.
  const int64_t pad = o.token_ids.contains("pad") ? o.token_ids["pad"].get<int64_t>()
                                                  : add_tokens(o.out_dir, {"<pad>"}, true, false).front();
  int64_t vocab = std::max(o.vocab_size, pad + 1);
  for (int64_t id : ids) vocab = std::max(vocab, id + 1);
  const int64_t S = 56, D = 64;
  nlohmann::json text = {{"model_type", "kosmos_2_text_model"}, {"vocab_size", vocab}, {"embed_dim", D},
                         {"layers", 2}, {"attention_heads", 4}, {"ffn_dim", 128}, {"activation_function", "gelu"},
                         {"max_position_embeddings", 2048}, {"layer_norm_eps", 1e-5}, {"scale_embedding", true},
                         {"bos_token_id", o.token_ids.value("bos", 0)}, {"eos_token_id", o.token_ids.value("eos", 2)},
                         {"pad_token_id", pad}, {"tie_word_embeddings", true}};
  nlohmann::json vision = {{"model_type", "kosmos_2_vision_model"}, {"hidden_size", D}, {"num_hidden_layers", 2},
                           {"num_attention_heads", 4}, {"intermediate_size", 128}, {"hidden_act", "quick_gelu"},
                           {"layer_norm_eps", 1e-5}, {"image_size", S}, {"patch_size", 14}, {"num_channels", 3}};
  nlohmann::json cfg = {{"architectures", {"Kosmos2ForConditionalGeneration"}}, {"model_type", "kosmos-2"},
                        {"latent_query_num", 16}, {"tie_word_embeddings", true}, {"text_config", text},
                        {"vision_config", vision},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  Kosmos2Model m;
  m.cfg = Kosmos2Config::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  // microsoft/kosmos-2-patch14-224 resizes to 224x224 without a crop.
  nlohmann::json pre = clip_normalized_preprocessor(
      "CLIPImageProcessor", {{"size", {{"height", S}, {"width", S}}},
                             {"do_center_crop", false},
                             {"crop_size", {{"height", S}, {"width", S}}}});
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
  nlohmann::json gen = {{"bos_token_id", text["bos_token_id"]}, {"eos_token_id", text["eos_token_id"]},
                        {"pad_token_id", pad}, {"do_sample", false}, {"max_new_tokens", 64}};
  write_file_atomic(o.out_dir + "/generation_config.json", gen.dump(2) + "\n");
}

FamilySpec kosmos2_family() {
  FamilySpec f;
  f.name = "kosmos2";
  f.description = "KOSMOS-2 (CLIP tower + latent-query connector + Magneto decoder): grounded captions with boxes";
  f.model_types = {"kosmos-2"};
  f.architectures = {"Kosmos2ForConditionalGeneration"};
  f.tiny_archs = {"tiny"};
  f.default_tokenizer = "llama2";
  f.load = load_checkpoint_model_with<Kosmos2Model>;
  f.run_fixture = kosmos2_fixture;
  f.make_tiny = make_tiny_kosmos2;
  return f;
}

}  // namespace lumen
