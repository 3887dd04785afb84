#include "families/llava/llava.h"

#include <cstring>

#include "families/family_util.h"
#include "core/mapped_file.h"
#include "formats/json_config.h"
#include "text/chat_template.h"
#include "vision/anyres.h"

namespace lumen {

LlavaConfig LlavaConfig::from_hf(const nlohmann::json& j, const std::string& path) {
  JsonView v(&j, path);
  LlavaConfig c;
  c.model_type = v.get_string("model_type", "llava");
  JsonView vc = v.child("vision_config");
  const std::string vtype = vc.get_string("model_type", "clip_vision_model");
  LUMEN_CHECK(vtype == "clip_vision_model", vc.field("model_type"), ": vision tower '", vtype,
              "' is not supported (lumen's LLaVA runs clip_vision_model towers)");
  c.vision = VitConfig::from_hf(vc);
  c.text = DecoderLmConfig::from_hf(v.child("text_config"), v.get_bool("tie_word_embeddings", false));
  LUMEN_CHECK(c.text.model_type == "llama" || c.text.model_type == "mistral", v.field("text_config.model_type"),
              ": language model '", c.text.model_type, "' is not supported (lumen's LLaVA runs llama, mistral)");
  c.projector_act = parse_activation(v.get_string("projector_hidden_act", "gelu"), v.field("projector_hidden_act"));
  c.projector_bias = v.get_bool("multimodal_projector_bias", true);
  c.linear_projector = v.get_string("projector_type", "mlp2x_gelu") == "linear";
  if (v.has("vision_feature_layer") && v.raw()["vision_feature_layer"].is_array())
    c.feature_layers = v.get_ints("vision_feature_layer");
  else
    c.feature_layers = {v.get_int("vision_feature_layer", -2)};
  LUMEN_CHECK(!c.feature_layers.empty(), v.field("vision_feature_layer"), ": empty list");
  for (int64_t f : c.feature_layers) {
    const int64_t n = c.vision.encoder.layers;
    LUMEN_CHECK(f >= -(n + 1) && f <= n, v.field("vision_feature_layer"), ": ", f, " is not a hidden state of a ", n,
                "-layer tower");
  }
  const std::string strategy = v.get_string("vision_feature_select_strategy", "default");
  LUMEN_CHECK(strategy == "default" || strategy == "full", v.field("vision_feature_select_strategy"), ": '", strategy,
              "' (expected default or full)");
  c.select_full = strategy == "full";
  c.image_token_id = v.has("image_token_index") ? v.get_int("image_token_index") : v.get_int("image_token_id", 32000);
  LUMEN_CHECK(c.image_token_id >= 0, v.field("image_token_index"), ": negative");
  if (v.has("image_grid_pinpoints")) {
    c.grid_pinpoints = parse_grid_pinpoints(v.raw()["image_grid_pinpoints"], v.field("image_grid_pinpoints"));
    check_pinpoints_tile(c.grid_pinpoints, c.vision.image_size, v.field("image_grid_pinpoints"));
  }
  return c;
}

int64_t LlavaConfig::layers_for(int64_t feature_layer) const {
  return feature_layer >= 0 ? feature_layer : vision.encoder.layers + 1 + feature_layer;
}

namespace {

// The checkpoint layouts in use: transformers < 4.52 (and 5's save format) nest the LM as
// language_model.{model,lm_head}; 4.52+ in memory and some re-saves use model.language_model +
// lm_head. The CLIP tower may or may not keep its "vision_model." level.
struct LlavaLayout {
  std::string lm, head, vision, projector, newline;
};

LlavaLayout detect_layout(const ParamScope& root) {
  LlavaLayout l;
  if (root.has("language_model.model.embed_tokens.weight") || !root.has("model.language_model.embed_tokens.weight")) {
    l.lm = "language_model.model";
    l.head = "language_model";
    l.projector = "multi_modal_projector";
    l.newline = "image_newline";
    l.vision = "vision_tower";
  } else {
    l.lm = "model.language_model";
    l.head = "";
    l.projector = "model.multi_modal_projector";
    l.newline = "model.image_newline";
    l.vision = "model.vision_tower";
  }
  if (!root.has(l.vision + ".embeddings.patch_embedding.weight") &&
      root.has(l.vision + ".vision_model.embeddings.patch_embedding.weight"))
    l.vision += ".vision_model";
  return l;
}

ParamScope scope_of(const ParamScope& root, const std::string& path) {
  if (path.empty()) return root;
  ParamScope s = root;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    s = s.sub(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return s;
    start = dot + 1;
  }
}

struct PackedGrid {
  int64_t tiles_h = 0, tiles_w = 0;  // grid tiles
  UnpaddedGrid kept;                 // the block of the feature map that saw the image
};

// get_anyres_image_grid_shape + unpad_image for an image of (h, w) (vision/anyres.h).
PackedGrid anyres_grid(const LlavaConfig& c, int64_t h, int64_t w) {
  LUMEN_CHECK(h > 0 && w > 0, "image size ", h, "x", w, " is not positive");
  const int64_t s = c.vision.grid();
  const AnyresGrid tiles = anyres_grid_shape({h, w}, c.grid_pinpoints, c.vision.image_size);
  PackedGrid g;
  g.tiles_h = tiles.rows;
  g.tiles_w = tiles.cols;
  g.kept = unpadded_feature_grid(h, w, tiles.rows * s, tiles.cols * s);
  return g;
}

}  // namespace

void LlavaModel::visit(ParamVisitor& v) {
  ParamScope root(v);
  const LlavaLayout l = detect_layout(root);
  vision.visit(scope_of(root, l.vision), cfg.vision);
  const int64_t dv = cfg.vision.encoder.dim * static_cast<int64_t>(cfg.feature_layers.size());
  const int64_t dt = cfg.text.dim;
  ParamScope proj = scope_of(root, l.projector);
  linear_1.visit(proj.sub("linear_1"), dv, dt, cfg.projector_bias);
  if (!cfg.linear_projector) linear_2.visit(proj.sub("linear_2"), dt, dt, cfg.projector_bias);
  text.visit(scope_of(root, l.lm), scope_of(root, l.head), cfg.text);
  if (anyres()) root(l.newline, {dt}, Init::Vector, &image_newline);
}

Tensor LlavaModel::vision_features(const Tensor& pixel_values) const {
  const int64_t T = pixel_values.dim(0), P = cfg.vision.num_positions(), D = cfg.vision.encoder.dim;
  const int64_t first = cfg.select_full ? 0 : 1, n = P - first;
  const int64_t nf = static_cast<int64_t>(cfg.feature_layers.size());
  int64_t deepest = 0;
  for (int64_t f : cfg.feature_layers) deepest = std::max(deepest, cfg.layers_for(f));
  // Run the tower once, keeping hidden_states[k] for every requested k.
  Tensor out = Tensor::zeros({T, n, D * nf});
  Tensor h = vision.embed(pixel_values);  // [T*P, D] = hidden_states[0]
  auto capture = [&](int64_t k) {
    for (int64_t fi = 0; fi < nf; ++fi) {
      if (cfg.layers_for(cfg.feature_layers[static_cast<size_t>(fi)]) != k) continue;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(out.data<float>() + ((t * n + i) * nf + fi) * D, h.data<float>() + (t * P + first + i) * D,
                      static_cast<size_t>(D) * sizeof(float));
    }
  };
  capture(0);
  for (int64_t k = 1; k <= deepest; ++k) {
    vision.encoder.layers[static_cast<size_t>(k - 1)].forward(h, T, P, /*causal=*/false, nullptr);
    capture(k);
  }
  return out;
}

Tensor LlavaModel::tile_features(const Tensor& pixel_values) const {
  Tensor f = vision_features(pixel_values);  // [T, n, Dv']
  const int64_t T = f.dim(0), n = f.dim(1);
  Tensor x = f.reshape({T * n, f.dim(2)});
  Tensor h = linear_1.forward(x);  // [T*n, Dt]
  apply_activation(cfg.projector_act, h.data<float>(), h.numel());
  if (!cfg.linear_projector) h = linear_2.forward(h);
  return h.reshape({T, n, cfg.text.dim});
}

int64_t LlavaModel::image_token_count(const ImageInput& image) const {
  if (!anyres()) return tokens_per_tile();
  const PackedGrid g = anyres_grid(cfg, image.height, image.width);
  return tokens_per_tile() + g.kept.rows * (g.kept.cols + 1);
}

Tensor LlavaModel::encode_image(const ImageInput& image) const {
  const Tensor& pv = image.pixel_values;
  const int64_t S = cfg.vision.image_size;
  LUMEN_CHECK(pv.ndim() == 4 && pv.dim(1) == 3 && pv.dim(2) == S && pv.dim(3) == S,
              "image expects pixel_values [tiles, 3, ", S, ", ", S, "], got ", pv.describe());
  const int64_t Dt = cfg.text.dim, n = tokens_per_tile();
  if (!anyres()) {
    LUMEN_CHECK(pv.dim(0) == 1, cfg.model_type, " takes one tile per image, got ", pv.dim(0));
    return tile_features(pv).reshape({n, Dt});
  }
  // LLaVA-NeXT (modeling_llava_next.LlavaNextModel.pack_image_features): the base tile's
  // features, then the grid tiles' feature map unpadded to the image's aspect ratio, row by
  // row, each row followed by image_newline.
  const PackedGrid g = anyres_grid(cfg, image.height, image.width);
  const int64_t tiles = 1 + g.tiles_h * g.tiles_w;
  LUMEN_CHECK(pv.dim(0) >= tiles, "image of ", image.height, "x", image.width, " needs ", tiles,
              " tiles (base + ", g.tiles_h, "x", g.tiles_w, " grid), pixel_values has ", pv.dim(0));
  LUMEN_CHECK(!cfg.select_full, cfg.model_type, ": AnyRes packing needs vision_feature_select_strategy default");
  Tensor used = pv.dim(0) == tiles ? pv : pv.slice0(0, tiles);
  Tensor f = tile_features(used);  // [tiles, s*s, Dt]
  const int64_t s = cfg.vision.grid();
  Tensor out = Tensor::zeros({n + g.kept.rows * (g.kept.cols + 1), Dt});
  float* o = out.data<float>();
  const float* fp = f.data<float>();
  std::memcpy(o, fp, static_cast<size_t>(n * Dt) * sizeof(float));
  o += n * Dt;
  for (int64_t r = g.kept.top; r < g.kept.top + g.kept.rows; ++r) {
    for (int64_t c = g.kept.left; c < g.kept.left + g.kept.cols; ++c) {
      // Feature map cell (r, c) = tile (r / s, c / s), patch (r % s, c % s).
      const int64_t tile = 1 + (r / s) * g.tiles_w + (c / s);
      const int64_t patch = (r % s) * s + (c % s);
      std::memcpy(o, fp + (tile * n + patch) * Dt, static_cast<size_t>(Dt) * sizeof(float));
      o += Dt;
    }
    std::memcpy(o, image_newline.data<float>(), static_cast<size_t>(Dt) * sizeof(float));
    o += Dt;
  }
  return out;
}

namespace {

Tensor input_or_empty(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? Tensor() : it->second;
}

}  // namespace

TensorMap vlm_fixture(const Model& m, const std::string& task, const TensorMap& inputs, const nlohmann::json& meta) {
  const auto* vlm = dynamic_cast<const VisionLanguageModel*>(&m);
  LUMEN_CHECK(vlm, "family ", m.family(), " is not a vision-language model");
  Tensor ids_t = input_or_empty(inputs, "input_ids");
  Tensor pv = input_or_empty(inputs, "pixel_values");
  Tensor sizes = input_or_empty(inputs, "image_sizes");
  LUMEN_CHECK(ids_t.defined() && ids_t.ndim() == 2 && ids_t.dim(0) == 1, "fixture needs input_ids [1, L]");
  std::vector<int64_t> ids(ids_t.data<int64_t>(), ids_t.data<int64_t>() + ids_t.numel());
  std::vector<ImageInput> images;
  if (pv.defined()) {
    // [B, 3, S, S] (one tile per image) or [B, tiles, 3, S, S] with image_sizes [B, 2].
    const int64_t B = pv.dim(0);
    for (int64_t b = 0; b < B; ++b) {
      ImageInput img;
      if (pv.ndim() == 5) {
        img.pixel_values = pv.slice0(b, b + 1).reshape({pv.dim(1), pv.dim(2), pv.dim(3), pv.dim(4)});
        LUMEN_CHECK(sizes.defined() && sizes.numel() == 2 * B, "tiled pixel_values need image_sizes [", B, ", 2]");
        img.height = sizes.data<int64_t>()[2 * b];
        img.width = sizes.data<int64_t>()[2 * b + 1];
      } else {
        img.pixel_values = pv.slice0(b, b + 1);
        img.height = pv.dim(2);
        img.width = pv.dim(3);
      }
      images.push_back(img);
    }
  }
  const DecoderLm& lm = vlm->lm();
  const int64_t L = static_cast<int64_t>(ids.size()), V = lm.cfg.vocab_size;
  TensorMap out;
  if (task == "causal_lm_forward") {
    Tensor e = vlm_prompt_embeddings(*vlm, ids, images, &out);
    KvCache cache = lm.new_cache(L);
    Tensor h = lm.forward(e, cache);
    out["logits"] = lm.logits(h.data<float>(), L).reshape({1, L, V});
    return out;
  }
  LUMEN_CHECK(task == "greedy_generate", "task '", task, "' is not supported by family ", m.family());
  const nlohmann::json gen = meta.value("generation", nlohmann::json::object());
  const int64_t new_tokens = gen.value("max_new_tokens", 8);
  Tensor e = vlm_prompt_embeddings(*vlm, ids, images, nullptr);
  KvCache cache = lm.new_cache(L + new_tokens);
  Tensor h = lm.forward(e, cache);
  Tensor logits = lm.logits(h.data<float>() + (L - 1) * lm.cfg.dim, 1);
  std::vector<int64_t> sequence = ids;
  std::vector<std::vector<float>> steps;
  for (int64_t t = 0; t < new_tokens; ++t) {
    const float* lg = logits.data<float>();
    steps.emplace_back(lg, lg + V);
    const int64_t next = static_cast<int64_t>(std::max_element(lg, lg + V) - lg);
    sequence.push_back(next);
    if (t + 1 == new_tokens) break;
    Tensor x = lm.embed(&next, 1);
    h = lm.forward(x, cache);
    logits = lm.logits(h.data<float>(), 1);
  }
  add_generation_outputs(out, sequence, L, steps);
  return out;
}

namespace {

struct LlavaPreset {
  int64_t vd, vl, vh, vm, patch, image;  // CLIP tower
  int64_t td, tl, th, tkv, tm, max_pos;  // LLaMA / Mistral
};

}  // namespace

nlohmann::json llava_preset_config(const MakeTinyOptions& o, bool next, int64_t vocab, int64_t image_token_id) {
  LlavaPreset p{64, 3, 4, 128, 14, 56, 64, 2, 4, 2, 128, 2048};
  std::string text_type = "llama";
  if (o.arch == "llava-1.5-7b") {
    p = {1024, 24, 16, 4096, 14, 336, 4096, 32, 32, 32, 11008, 4096};
  } else if (o.arch == "llava-v1.6-mistral-7b") {
    p = {1024, 24, 16, 4096, 14, 336, 4096, 32, 32, 8, 14336, 32768};
    text_type = "mistral";
  } else {
    LUMEN_CHECK(o.arch == "tiny", next ? "llava_next" : "llava", " has no --arch '", o.arch, "' (tiny, ",
                next ? "llava-v1.6-mistral-7b" : "llava-1.5-7b", ")");
  }
  nlohmann::json vision = {{"model_type", "clip_vision_model"}, {"hidden_size", p.vd}, {"num_hidden_layers", p.vl},
                           {"num_attention_heads", p.vh}, {"intermediate_size", p.vm}, {"hidden_act", "quick_gelu"},
                           {"layer_norm_eps", 1e-5}, {"image_size", p.image}, {"patch_size", p.patch},
                           {"num_channels", 3}, {"projection_dim", 768}};
  nlohmann::json text = {{"model_type", text_type}, {"vocab_size", vocab}, {"hidden_size", p.td},
                         {"num_hidden_layers", p.tl}, {"num_attention_heads", p.th}, {"num_key_value_heads", p.tkv},
                         {"head_dim", p.td / p.th}, {"intermediate_size", p.tm}, {"hidden_act", "silu"},
                         {"max_position_embeddings", p.max_pos}, {"rms_norm_eps", 1e-5},
                         {"rope_theta", text_type == "mistral" ? 1e6 : 1e4}, {"tie_word_embeddings", false},
                         {"bos_token_id", o.token_ids.value("bos", 1)}, {"eos_token_id", o.token_ids.value("eos", 2)},
                         {"pad_token_id", o.token_ids.value("pad", 0)}};
  nlohmann::json cfg = {{"architectures", {next ? "LlavaNextForConditionalGeneration" : "LlavaForConditionalGeneration"}},
                        {"model_type", next ? "llava_next" : "llava"}, {"image_token_index", image_token_id},
                        {"projector_hidden_act", "gelu"}, {"multimodal_projector_bias", true},
                        {"vision_feature_layer", -2}, {"vision_feature_select_strategy", "default"},
                        {"tie_word_embeddings", false}, {"vision_config", vision}, {"text_config", text},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  if (next) {
    const int64_t S = p.image;
    cfg["image_grid_pinpoints"] = {{S, 2 * S}, {2 * S, S}, {2 * S, 2 * S}, {3 * S, S}, {S, 3 * S}};
  }
  return cfg;
}

void make_tiny_llava(const MakeTinyOptions& o, bool next) {
  // LLaVA prompts write each image as "<image>": the tokenizer gets it as a special token.
  const int64_t image_token_id = add_special_token(o.out_dir, "<image>");
  const int64_t vocab = (std::max(o.vocab_size, image_token_id + 1) + 63) / 64 * 64;  // llava-hf pads to 64
  nlohmann::json cfg = llava_preset_config(o, next, vocab, image_token_id);
  LlavaModel m;
  m.cfg = LlavaConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  const int64_t S = m.cfg.vision.image_size;
  nlohmann::json pre = clip_normalized_preprocessor(
      next ? "LlavaNextImageProcessor" : "CLIPImageProcessor",
      {{"size", {{"shortest_edge", S}}}, {"do_center_crop", true}, {"crop_size", {{"height", S}, {"width", S}}}});
  if (next) {
    pre["image_grid_pinpoints"] = cfg["image_grid_pinpoints"];
    pre["do_pad"] = true;
  }
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
  // The prompt format of the checkpoints this mimics, unless the tokenizer brought a template.
  if (!text::ChatTemplate::from_dir(o.out_dir)) {
    const std::string name = !next ? "llava" : m.cfg.text.model_type == "mistral" ? "llava_next_mistral" : "vicuna";
    nlohmann::json t = {{"chat_template", text::builtin_chat_template(name)}};
    write_file_atomic(o.out_dir + "/chat_template.json", t.dump(2) + "\n");
  }
}

FamilySpec llava_family() {
  FamilySpec f;
  f.name = "llava";
  f.description = "LLaVA / LLaVA-1.5 / LLaVAR (CLIP tower + MLP projector + LLaMA/Vicuna/Mistral): chat about images";
  f.model_types = {"llava"};
  f.architectures = {"LlavaForConditionalGeneration"};
  f.tiny_archs = {"tiny", "llava-1.5-7b"};
  f.default_tokenizer = "llama2";
  f.load = load_checkpoint_model_with<LlavaModel>;
  f.run_fixture = vlm_fixture;
  f.make_tiny = [](const MakeTinyOptions& o) { make_tiny_llava(o, false); };
  return f;
}

FamilySpec llava_next_family() {
  FamilySpec f;
  f.name = "llava_next";
  f.description = "LLaVA-NeXT / LLaVA-1.6 (AnyRes tiling of high-resolution images, Vicuna/Mistral LMs)";
  f.model_types = {"llava_next"};
  f.architectures = {"LlavaNextForConditionalGeneration"};
  f.tiny_archs = {"tiny", "llava-v1.6-mistral-7b"};
  f.default_tokenizer = "llama2";
  f.load = load_checkpoint_model_with<LlavaModel>;
  f.run_fixture = vlm_fixture;
  f.make_tiny = [](const MakeTinyOptions& o) { make_tiny_llava(o, true); };
  return f;
}

}  // namespace lumen
