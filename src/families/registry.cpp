#include <sys/stat.h>

#include "families/family.h"
#include "formats/json_config.h"

namespace lumen {

FamilySpec clip_family();
FamilySpec siglip_family();
FamilySpec llama_family();
FamilySpec llava_family();
FamilySpec llava_next_family();
FamilySpec blip_family();
FamilySpec blip2_opt_family();
FamilySpec blip2_t5_family();
FamilySpec kosmos2_family();

const std::vector<FamilySpec>& families() {
  // One line per family.
  static const std::vector<FamilySpec> all = {
      clip_family(),
      siglip_family(),
      llama_family(),
      llava_family(),
      llava_next_family(),
      blip_family(),
      blip2_opt_family(),
      blip2_t5_family(),
      kosmos2_family(),
  };
  return all;
}

const FamilySpec* find_family(const std::string& name) {
  for (const auto& f : families())
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<std::string> registered_family_names() {
  std::vector<std::string> out;
  for (const auto& f : families()) out.push_back(f.name);
  return out;
}

static std::string known_list() {
  std::string s;
  for (const auto& f : families()) s += (s.empty() ? "" : ", ") + f.name;
  return s;
}

const FamilySpec& family_for_checkpoint(const std::string& dir) {
  struct stat st {};
  LUMEN_CHECK(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), dir, ": not a model directory");
  const std::string path = dir + "/config.json";
  nlohmann::json cfg = JsonView::load_file(path);
  JsonView v(&cfg, path);
  std::string model_type = v.get_string("model_type", "");
  for (const auto& f : families())
    for (const auto& t : f.model_types)
      if (t == model_type) return f;
  std::string archs;
  if (cfg.contains("architectures") && cfg["architectures"].is_array()) {
    for (const auto& a : cfg["architectures"]) {
      if (!a.is_string()) continue;
      archs += (archs.empty() ? "" : ", ") + a.get<std::string>();
      for (const auto& f : families())
        for (const auto& name : f.architectures)
          if (name == a.get<std::string>()) return f;
    }
  }
  fail(path, ": unknown architecture (model_type '", model_type, "'", archs.empty() ? "" : ", architectures " + archs,
       "); lumen runs: ", known_list());
}

std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options) {
  const FamilySpec& f = family_for_checkpoint(dir);
  return with_context(dir, [&] { return f.load(dir, options); });
}

Tensor DualEncoder::match_probabilities(const Tensor&, const Tensor&, const Tensor&) const {
  fail("family ", family(), " has no image-text matching head");
}

TensorMap dual_encoder_fixture(const Model& m, const std::string& task, const TensorMap& inputs) {
  LUMEN_CHECK(task == "contrastive_forward", "task '", task, "' is not supported by family ", m.family());
  const auto* de = dynamic_cast<const DualEncoder*>(&m);
  LUMEN_CHECK(de, "family ", m.family(), " is not a dual encoder");
  auto get = [&](const char* name) -> Tensor {
    auto it = inputs.find(name);
    return it == inputs.end() ? Tensor() : it->second;
  };
  Tensor pv = get("pixel_values");
  Tensor ids = get("input_ids");
  LUMEN_CHECK(pv.defined() && ids.defined(), "contrastive_forward needs inputs pixel_values and input_ids");
  return de->forward_all(pv, ids, get("attention_mask"));
}

}  // namespace lumen
