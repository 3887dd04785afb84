#include "families/blip2/blip2.h"

#include <cstring>

#include "families/family_util.h"
#include "formats/json_config.h"

namespace lumen {

Blip2Config Blip2Config::from_hf(const nlohmann::json& j, const std::string& path) {
  JsonView v(&j, path);
  Blip2Config c;
  c.vision = BlipVisionConfig::from_hf(v.child("vision_config"));
  c.qformer = QFormerConfig::from_hf(v.child("qformer_config"));
  c.num_query_tokens = v.get_int("num_query_tokens", 32);
  c.image_token_id = v.has("image_token_index") ? v.get_int("image_token_index") : v.get_int("image_token_id", -1);
  JsonView t = v.child("text_config");
  c.lm_type = t.get_string("model_type", "opt");
  if (c.lm_type == "opt") {
    c.opt = OptConfig::from_hf(t);
  } else if (c.lm_type == "t5") {
    c.t5 = T5Config::from_hf(t);
  } else {
    fail(t.field("model_type"), ": language model '", c.lm_type, "' is not supported (lumen's BLIP-2 runs opt, t5)");
  }
  LUMEN_CHECK(c.qformer.encoder_dim == c.vision.encoder.dim, v.field("qformer_config.encoder_hidden_size"), ": ",
              c.qformer.encoder_dim, " differs from the vision hidden_size ", c.vision.encoder.dim);
  return c;
}

void Blip2Model::visit(ParamVisitor& v) {
  ParamScope root(v);
  vision.visit(root.sub("vision_model"), cfg.vision);
  root("query_tokens", {1, cfg.num_query_tokens, cfg.qformer.dim}, Init::Vector, &query_tokens);
  qformer.visit(root.sub("qformer"), cfg.qformer);
  language_projection.visit(root.sub("language_projection"), cfg.qformer.dim, cfg.text_dim());
  ParamScope lm = root.sub("language_model");
  if (cfg.lm_type == "opt") {
    opt = std::make_unique<OptDecoder>();
    opt->visit(lm.sub("model").sub("decoder"), lm, cfg.opt);
  } else {
    t5 = std::make_unique<T5Model>();
    t5->visit(lm, cfg.t5);
  }
}

Tensor Blip2Model::image_queries(const Tensor& pixel_values, TensorMap* debug) const {
  LUMEN_CHECK(pixel_values.ndim() == 4 && pixel_values.dim(0) == 1, "BLIP-2 takes one image [1, 3, S, S], got ",
              pixel_values.describe());
  Tensor img = vision.forward(pixel_values);  // [1, T, Dv]
  const int64_t T = img.dim(1), Q = cfg.num_query_tokens;
  Tensor q = qformer.forward(query_tokens.reshape({Q, cfg.qformer.dim}), 1, Q, img.reshape({T, img.dim(2)}), T);
  Tensor lm_in = language_projection.forward(q);  // [Q, Dt]
  if (debug) {
    (*debug)["vision_last_hidden_state"] = img;
    (*debug)["qformer_last_hidden_state"] = q.reshape({1, Q, cfg.qformer.dim});
    (*debug)["language_model_inputs"] = lm_in.reshape({1, Q, cfg.text_dim()});
  }
  return lm_in;
}

std::vector<int64_t> Blip2Model::with_image_tokens(const std::vector<int64_t>& text_ids) const {
  if (cfg.image_token_id < 0) return text_ids;  // older configs prepend the queries themselves
  std::vector<int64_t> ids(static_cast<size_t>(cfg.num_query_tokens), cfg.image_token_id);
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  return ids;
}

Tensor Blip2Model::prompt_embeddings(const std::vector<int64_t>& ids, const Tensor& queries) const {
  const int64_t L = static_cast<int64_t>(ids.size()), D = cfg.text_dim(), Q = queries.dim(0);
  std::vector<int64_t> text_ids(ids);
  int64_t n_image = 0;
  for (auto& id : text_ids)
    if (id == cfg.image_token_id) {
      id = 0;  // embedded, then replaced by a query
      ++n_image;
    }
  Tensor e = opt ? opt->embed(text_ids.data(), L) : t5->embed(text_ids.data(), L);
  if (cfg.image_token_id < 0) {
    // transformers < 4.47: language_model_inputs are concatenated before the prompt.
    Tensor out = Tensor::zeros({Q + L, D});
    std::memcpy(out.data<float>(), queries.data<float>(), static_cast<size_t>(Q * D) * sizeof(float));
    std::memcpy(out.data<float>() + Q * D, e.data<float>(), static_cast<size_t>(L * D) * sizeof(float));
    return out;
  }
  LUMEN_CHECK(n_image == Q, "the prompt has ", n_image, " image tokens (id ", cfg.image_token_id, "), BLIP-2 writes ",
              Q, " query outputs");
  int64_t next = 0;
  for (int64_t i = 0; i < L; ++i)
    if (ids[static_cast<size_t>(i)] == cfg.image_token_id)
      std::memcpy(e.data<float>() + i * D, queries.data<float>() + (next++) * D, static_cast<size_t>(D) * sizeof(float));
  return e;
}

Tensor Blip2Model::forward_logits(const std::vector<int64_t>& ids, const Tensor& queries,
                                  const std::vector<int64_t>& decoder_ids) const {
  Tensor e = prompt_embeddings(ids, queries);
  const int64_t L = e.dim(0);
  if (opt) {
    OptCache cache = opt->new_cache(L);
    Tensor h = opt->forward(e, cache);
    return opt->logits(h.data<float>(), L);
  }
  LUMEN_CHECK(!decoder_ids.empty(), "BLIP-2 with T5 needs decoder ids");
  Tensor enc = t5->encode(e);
  T5DecoderCache cache = t5->new_cache(enc, static_cast<int64_t>(decoder_ids.size()));
  return t5->decode(decoder_ids.data(), static_cast<int64_t>(decoder_ids.size()), cache);
}

std::vector<int64_t> Blip2Model::generate(const std::vector<int64_t>& ids, const Tensor& queries,
                                          const BeamSearchParams& g,
                                          std::vector<std::vector<float>>* step_logits) const {
  Tensor e = prompt_embeddings(ids, queries);
  const int64_t L = e.dim(0);
  // One cache per running sequence, reordered after each beam step by `parent`.
  std::vector<OptCache> opt_caches;
  std::vector<T5DecoderCache> t5_caches;
  Tensor encoder_out;
  std::vector<int64_t> start;
  if (opt) {
    start = ids;
  } else {
    encoder_out = t5->encode(e);
    start = {cfg.t5.decoder_start_token_id};
  }
  const int64_t capacity = (opt ? L : 1) + g.max_new_tokens;
  NextTokenLogitsFn next = [&](const std::vector<std::vector<int64_t>>& seqs, const std::vector<int64_t>& parent) {
    const size_t n = seqs.size();
    const int64_t V = opt ? cfg.opt.vocab_size : cfg.t5.vocab_size;
    Tensor out = Tensor::zeros({static_cast<int64_t>(n), V});
    if (parent[0] < 0) {  // first step: every row is the prompt
      Tensor first;
      if (opt) {
        opt_caches.assign(1, opt->new_cache(capacity));
        Tensor h = opt->forward(e, opt_caches[0]);
        first = opt->logits(h.data<float>() + (L - 1) * cfg.opt.word_embed_proj_dim, 1);
        opt_caches.resize(n, opt_caches[0]);
      } else {
        t5_caches.assign(1, t5->new_cache(encoder_out, capacity));
        first = t5->decode(start.data(), 1, t5_caches[0]);
        t5_caches.resize(n, t5_caches[0]);
      }
      // Copies share tensors; give every row its own self-attention storage.
      for (size_t i = 1; i < n; ++i) {
        auto deep = [](std::vector<Tensor>& ts) {
          for (auto& t : ts) t = t.clone();
        };
        if (opt) {
          deep(opt_caches[i].k);
          deep(opt_caches[i].v);
        } else {
          deep(t5_caches[i].k);
          deep(t5_caches[i].v);
        }
      }
      for (size_t i = 0; i < n; ++i)
        std::memcpy(out.data<float>() + i * V, first.data<float>(), static_cast<size_t>(V) * sizeof(float));
      return out;
    }
    // Row i continues row parent[i]. The first row to pick a parent takes its cache over (the
    // tensors move, nothing is copied); only a parent picked again is cloned for each extra
    // child, so a step that keeps or permutes the beams copies nothing.
    auto reorder = [&](auto& caches) {
      auto old = std::move(caches);
      caches.clear();
      caches.resize(n);
      std::vector<char> taken(n, 0);
      for (size_t i = 0; i < n; ++i) {
        const size_t p = static_cast<size_t>(parent[i]);
        caches[i] = old[p];
        if (taken[p]) {
          for (auto& t : caches[i].k) t = t.clone();
          for (auto& t : caches[i].v) t = t.clone();
        }
        taken[p] = 1;
      }
    };
    if (opt) reorder(opt_caches); else reorder(t5_caches);
    for (size_t i = 0; i < n; ++i) {
      const int64_t tok = seqs[i].back();
      Tensor lg;
      if (opt) {
        Tensor h = opt->forward(opt->embed(&tok, 1), opt_caches[i]);
        lg = opt->logits(h.data<float>(), 1);
      } else {
        lg = t5->decode(&tok, 1, t5_caches[i]);
      }
      std::memcpy(out.data<float>() + i * V, lg.data<float>(), static_cast<size_t>(V) * sizeof(float));
    }
    return out;
  };
  return best_sequence(start, g, next, step_logits);
}

namespace {

Tensor need(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  LUMEN_CHECK(it != in.end(), "fixture input '", name, "' is missing");
  return it->second;
}

std::vector<int64_t> row_ids(const Tensor& t) {
  LUMEN_CHECK(t.ndim() == 2 && t.dim(0) == 1, "ids [1, L] expected, got ", t.describe());
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

TensorMap blip2_fixture(const Model& model, const std::string& task, const TensorMap& in, const nlohmann::json& meta) {
  const auto* m = dynamic_cast<const Blip2Model*>(&model);
  LUMEN_CHECK(m, "family ", model.family(), " is not BLIP-2");
  TensorMap out;
  const std::vector<int64_t> ids = row_ids(need(in, "input_ids"));
  Tensor q = m->image_queries(need(in, "pixel_values"), &out);
  if (task == "causal_lm_forward" || task == "seq2seq_forward") {
    std::vector<int64_t> dec;
    if (task == "seq2seq_forward") dec = row_ids(need(in, "decoder_input_ids"));
    Tensor logits = m->forward_logits(ids, q, dec);
    out["logits"] = logits.reshape({1, logits.dim(0), logits.dim(1)});
    return out;
  }
  LUMEN_CHECK(task == "greedy_generate" || task == "beam_generate", "task '", task, "' is not supported by BLIP-2");
  const BeamSearchParams g = fixture_search_params(meta);
  std::vector<std::vector<float>> steps;
  std::vector<int64_t> seq = m->generate(ids, q, g, &steps);
  const int64_t prompt_len = m->opt ? static_cast<int64_t>(ids.size()) : 1;
  add_generation_outputs(out, seq, prompt_len, steps);
  return out;
}

}  // namespace

void make_tiny_blip2(const MakeTinyOptions& o, const std::string& lm) {
  LUMEN_CHECK(o.arch == "tiny", "blip2 has no --arch '", o.arch, "' (tiny)");
  const int64_t image_token = add_special_token(o.out_dir, "<image>");
  const int64_t vocab = (std::max(o.vocab_size, image_token + 1) + 63) / 64 * 64;
  nlohmann::json vision = {{"model_type", "blip_2_vision_model"}, {"hidden_size", 32}, {"num_hidden_layers", 2},
                           {"num_attention_heads", 4}, {"intermediate_size", 64}, {"image_size", 28},
                           {"patch_size", 7}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-6}, {"qkv_bias", true}};
  nlohmann::json qformer = {{"model_type", "blip_2_qformer"}, {"hidden_size", 32}, {"num_hidden_layers", 2},
                            {"num_attention_heads", 4}, {"intermediate_size", 64}, {"encoder_hidden_size", 32},
                            {"cross_attention_frequency", 2}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-12},
                            {"vocab_size", 128}, {"max_position_embeddings", 64}};
  const int64_t bos = o.token_ids.value("bos", int64_t{1}), eos = o.token_ids.value("eos", int64_t{2});
  const int64_t pad = o.token_ids.value("pad", int64_t{0});
  nlohmann::json text;
  if (lm == "opt") {
    text = {{"model_type", "opt"}, {"vocab_size", vocab}, {"hidden_size", 32}, {"word_embed_proj_dim", 32},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"ffn_dim", 64}, {"max_position_embeddings", 128},
            {"do_layer_norm_before", true}, {"activation_function", "relu"}, {"enable_bias", true},
            {"tie_word_embeddings", true}, {"bos_token_id", bos}, {"eos_token_id", eos}, {"pad_token_id", pad}};
  } else {
    text = {{"model_type", "t5"}, {"vocab_size", vocab}, {"d_model", 32}, {"d_kv", 8}, {"d_ff", 64},
            {"num_heads", 4}, {"num_layers", 2}, {"num_decoder_layers", 2}, {"feed_forward_proj", "gated-gelu"},
            {"dense_act_fn", "gelu_new"}, {"relative_attention_num_buckets", 8},
            {"relative_attention_max_distance", 20}, {"layer_norm_epsilon", 1e-6}, {"tie_word_embeddings", true},
            {"scale_decoder_outputs", false}, {"decoder_start_token_id", pad}, {"eos_token_id", eos},
            {"pad_token_id", pad}};
  }
  nlohmann::json cfg = {{"architectures", {"Blip2ForConditionalGeneration"}}, {"model_type", "blip-2"},
                        {"num_query_tokens", 4}, {"image_token_index", image_token},
                        {"use_decoder_only_language_model", lm == "opt"}, {"vision_config", vision},
                        {"qformer_config", qformer}, {"text_config", text},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  Blip2Model m;
  m.cfg = Blip2Config::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  nlohmann::json pre = clip_normalized_preprocessor("BlipImageProcessor", {{"size", {{"height", 28}, {"width", 28}}}});
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
}

FamilySpec blip2_opt_family() {
  FamilySpec f;
  f.name = "blip2_opt";
  f.description = "BLIP-2 (ViT + Q-Former + OPT or Flan-T5): captioning and prompted answers about an image";
  // Both BLIP-2 kinds share model_type "blip-2": this loader reads text_config and builds either.
  f.model_types = {"blip-2"};
  f.architectures = {"Blip2ForConditionalGeneration"};
  f.tiny_archs = {"tiny"};
  f.default_tokenizer = "llama2";
  f.load = load_checkpoint_model_with<Blip2Model>;
  f.run_fixture = blip2_fixture;
  f.make_tiny = [](const MakeTinyOptions& o) { make_tiny_blip2(o, "opt"); };
  return f;
}

FamilySpec blip2_t5_family() {
  FamilySpec f = blip2_opt_family();
  f.name = "blip2_t5";
  f.description = "BLIP-2 with a Flan-T5 encoder-decoder (loaded through model_type blip-2)";
  f.model_types = {};
  f.architectures = {};
  f.make_tiny = [](const MakeTinyOptions& o) { make_tiny_blip2(o, "t5"); };
  return f;
}

}  // namespace lumen
