#include "runtime/grounding_session.h"

#include <sys/stat.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/mapped_file.h"
#include "families/family.h"
#include "families/kosmos2/kosmos2.h"
#include "formats/json_config.h"
#include "runtime/vlm_session.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen {

using grounding::Format;
using grounding::ImageGeometry;

std::optional<GeometryMode> geometry_mode_from_name(const std::string& name) {
  if (name == "processor") return GeometryMode::Processor;
  if (name == "identity" || name == "image") return GeometryMode::Identity;
  if (name == "pad-square" || name == "pad_square") return GeometryMode::PadSquare;
  return std::nullopt;
}

std::optional<Format> default_box_format(const std::string& family) {
  if (family == "kosmos2") return Format::Kosmos2;
  if (family == "llava" || family == "llava_next") return Format::Llava15;
  return std::nullopt;
}

ImageGeometry geometry_for(GeometryMode mode, const ImageProcessor* p, int width, int height) {
  LUMEN_CHECK(width > 0 && height > 0, "image size ", width, "x", height, " is not positive");
  switch (mode) {
    case GeometryMode::Identity: return ImageGeometry::identity(width, height);
    case GeometryMode::PadSquare: {
      const double side = p && p->crop_width() > 0 ? p->crop_width() : std::max(width, height);
      return ImageGeometry::pad_to_square(width, height, side);
    }
    case GeometryMode::Processor:
      if (!p || p->is_anyres() || !p->supported()) return ImageGeometry::identity(width, height);
      return ImageGeometry::from_processor(*p, width, height);
  }
  return ImageGeometry::identity(width, height);
}

namespace {

namespace fs = std::filesystem;

// Kosmos2Processor.__init__ adds its markup to the tokenizer every time it is built
// (tokenizer.add_tokens: lstrip, not normalized, not special, ids from len(tokenizer) on). A
// checkpoint whose tokenizer.json was saved without them gets them the same way here, through
// a patched copy of its tokenizer files (the checkpoint directory is left untouched).
Tokenizer load_kosmos2_tokenizer(const std::string& dir) {
  Tokenizer tok = with_context(dir, [&] { return Tokenizer::from_dir(dir); });
  std::vector<std::string> markup = {"</doc>",   "<image>",  "</image>", "</chunk>",
                                     "</line>",  "<phrase>", "</phrase>", "<object>",
                                     "</object>", "</delimiter_of_multi_objects/>", "<grounding>"};
  for (int i = 0; i < 1024; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "<patch_index_%04d>", i);
    markup.push_back(buf);
  }
  bool missing = false;
  for (const auto& m : markup) missing = missing || !tok.token_to_id(m).has_value();
  if (!missing) return tok;
  const std::string tj = dir + "/tokenizer.json";
  LUMEN_CHECK(fs::exists(tj), dir, ": the tokenizer lacks KOSMOS-2's markup tokens (<phrase>, <patch_index_0000>, ...) "
              "and has no tokenizer.json to add them to");
  nlohmann::json j = JsonView::load_file(tj);
  if (!j.contains("added_tokens") || !j["added_tokens"].is_array()) j["added_tokens"] = nlohmann::json::array();
  int64_t next = static_cast<int64_t>(tok.vocab_size());
  for (const auto& m : markup) {
    if (tok.token_to_id(m)) continue;
    j["added_tokens"].push_back({{"id", next++}, {"content", m}, {"single_word", false}, {"lstrip", true},
                                 {"rstrip", false}, {"normalized", false}, {"special", false}});
  }
  const fs::path tmp = fs::temp_directory_path() / ("lumen_kosmos2_tok_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(reinterpret_cast<uintptr_t>(&j)));
  fs::create_directories(tmp);
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const bool model_file = name.size() > 6 && name.compare(name.size() - 6, 6, ".model") == 0;
    if (name == "tokenizer_config.json" || name == "special_tokens_map.json" || model_file)
      fs::copy_file(e.path(), tmp / name, fs::copy_options::overwrite_existing);
  }
  write_file_atomic((tmp / "tokenizer.json").string(), j.dump());
  Tokenizer patched = Tokenizer::from_dir(tmp.string());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return patched;
}

}  // namespace

GroundingSession::~GroundingSession() = default;
GroundingSession::GroundingSession(GroundingSession&&) noexcept = default;
GroundingSession& GroundingSession::operator=(GroundingSession&&) noexcept = default;

GroundingSession GroundingSession::open(const std::string& dir, const GroundingOptions& options) {
  GroundingSession s;
  s.dir_ = dir;
  s.options_ = options;
  const FamilySpec& fam = family_for_checkpoint(dir);
  s.family_ = fam.name;
  struct stat st {};
  const std::string pre = dir + "/preprocessor_config.json";
  if (::stat(pre.c_str(), &st) == 0) s.processor_ = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
  if (fam.name == "kosmos2") {
    LoadOptions lo;
    lo.linear = LinearFormat::Stored;
    auto m = load_model(dir, lo);
    s.kosmos_ = std::shared_ptr<const Kosmos2Model>(dynamic_cast<const Kosmos2Model*>(m.release()));
    s.tok_ = std::make_shared<const Tokenizer>(load_kosmos2_tokenizer(dir));
    LUMEN_CHECK(s.processor_, pre, ": missing; KOSMOS-2 needs its image processor config");
    s.format_ = options.format.value_or(Format::Kosmos2);
  } else {
    s.vlm_ = std::make_shared<const VlmSession>(VlmSession::open(dir));
    // LLaVA-1.5 was trained to write [x0, y0, x1, y1] in [0, 1]; other chat VLMs need --format.
    LUMEN_CHECK(options.format || fam.name == "llava" || fam.name == "llava_next", dir, ": family ", fam.name,
                " has no default box format; pass one (kosmos2, paligemma, pix2seq, kosmos2_5, shikra, qwen_vl, "
                "cogvlm, llava_1_5, seeclick, screenai)");
    s.format_ = options.format.value_or(Format::Llava15);
  }
  return s;
}

ImageGeometry GroundingSession::geometry_for(int width, int height) const {
  return lumen::geometry_for(options_.geometry, processor_.get(), width, height);
}

grounding::GroundedText GroundingSession::parse(const std::string& raw, int width, int height) const {
  grounding::FormatOptions fo;
  return grounding::parse(format_, raw, geometry_for(width, height), fo);
}

GroundingResult GroundingSession::ground(const Image& image, const std::string& prompt) const {
  return ground(image, prompt, GroundingRun{});
}

GroundingResult GroundingSession::ground(const Image& image, const std::string& prompt, const GroundingRun& run) const {
  const auto t0 = std::chrono::steady_clock::now();
  GroundingResult r;
  r.format = format_;
  const int64_t max_new = run.max_new_tokens.value_or(options_.max_new_tokens);
  if (kosmos_) {
    // Kosmos2Processor: "<grounding>" asks for boxes; the prompt continues from it.
    std::string text = prompt;
    if (text.rfind("<grounding>", 0) != 0) text = "<grounding>" + (text.empty() || text[0] == ' ' ? text : " " + text);
    Kosmos2Prompt p = kosmos2_prompt(*tok_, kosmos_->cfg, text);
    Tensor pv = processor_->preprocess(image);  // [1, 3, S, S]
    Tensor image_embeds = kosmos_->encode_image(pv);
    Kosmos2Model::GenerateOptions o;
    o.max_new_tokens = max_new;
    if (run.sampling) o.sampling = *run.sampling;
    o.eos_ids = {kosmos_->cfg.text.eos_token_id};
    if (auto e = tok_->eos_id(); e && *e != kosmos_->cfg.text.eos_token_id) o.eos_ids.push_back(*e);
    if (run.keep_going) o.on_token = [&run](int64_t) { return run.keep_going(); };
    std::vector<int64_t> gen = kosmos_->generate(p.ids, p.image_mask, image_embeds, o);
    r.new_tokens = static_cast<int64_t>(gen.size());
    r.prompt_tokens = static_cast<int64_t>(p.ids.size());
    r.finish_reason = r.new_tokens >= max_new ? "length" : "stop";
    // processor.batch_decode(generated_ids, skip_special_tokens=True) over prompt + answer, then
    // post_process_generation keeps what follows </image>.
    std::vector<int64_t> all = p.ids;
    all.insert(all.end(), gen.begin(), gen.end());
    r.raw = tok_->decode(all, /*skip_special_tokens=*/true);
  } else {
    nlohmann::ordered_json parts = nlohmann::ordered_json::array();
    parts.push_back({{"type", "image"}});
    parts.push_back({{"type", "text"}, {"text", prompt}});
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    msgs.push_back({{"role", "user"}, {"content", parts}});
    PreparedPrompt p = vlm_->prepare(vlm_->render_chat(msgs, true), {image});
    GenerationParams params = vlm_->default_params();
    params.max_new_tokens = max_new;
    if (run.sampling) params.sampling = *run.sampling;
    GenerationResult g =
        vlm_->generate(p, params, [&run](std::string_view) { return !run.keep_going || run.keep_going(); });
    r.raw = g.text;
    r.new_tokens = static_cast<int64_t>(g.tokens.size());
    r.prompt_tokens = g.prompt_tokens;
    r.finish_reason = g.finish_reason;
  }
  r.grounded = parse(r.raw, image.width, image.height);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

bool GroundingSession::serves_model(const Model& model) { return dynamic_cast<const Kosmos2Model*>(&model) != nullptr; }

GroundingSession GroundingSession::from_model(const std::string& dir, std::shared_ptr<const Model> model,
                                              const GroundingOptions& options) {
  LUMEN_CHECK(model, dir, ": no model");
  auto kosmos = std::dynamic_pointer_cast<const Kosmos2Model>(model);
  LUMEN_CHECK(kosmos, dir, ": a ", model->family(), " model is not a KOSMOS-2 model; open chat VLMs with open()");
  GroundingSession s;
  s.dir_ = dir;
  s.options_ = options;
  s.family_ = model->family();
  const std::string pre = dir + "/preprocessor_config.json";
  struct stat st {};
  LUMEN_CHECK(::stat(pre.c_str(), &st) == 0, pre, ": missing; KOSMOS-2 needs its image processor config");
  s.processor_ = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
  s.kosmos_ = std::move(kosmos);
  s.tok_ = std::make_shared<const Tokenizer>(load_kosmos2_tokenizer(dir));
  s.format_ = options.format.value_or(Format::Kosmos2);
  return s;
}

nlohmann::ordered_json grounded_json(const grounding::GroundedText& g) {
  using nlohmann::ordered_json;
  ordered_json ents = ordered_json::array();
  auto boxes = [](const std::vector<grounding::Box>& bs) {
    ordered_json a = ordered_json::array();
    for (const auto& b : bs) a.push_back({b.x0, b.y0, b.x1, b.y1});
    return a;
  };
  auto points = [](const std::vector<grounding::Point>& ps) {
    ordered_json a = ordered_json::array();
    for (const auto& p : ps) a.push_back({p.x, p.y});
    return a;
  };
  for (const auto& e : g.entities) {
    ordered_json j = {{"phrase", e.phrase}, {"span", {e.start, e.end}}, {"byte_span", {e.byte_start, e.byte_end}}};
    if (!e.label.empty()) j["label"] = e.label;
    j["boxes"] = boxes(e.boxes);
    j["points"] = points(e.points);
    j["norm_boxes"] = boxes(e.norm_boxes);
    j["norm_points"] = points(e.norm_points);
    ents.push_back(j);
  }
  return {{"text", g.text}, {"entities", ents}, {"warnings", g.warnings}};
}

}  // namespace lumen
