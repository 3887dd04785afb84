#include "runtime/verify.h"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "families/family.h"
#include "formats/json_config.h"
#include "formats/safetensors.h"
#include "runtime/verify_parts.h"

namespace lumen {

using nlohmann::json;

const char* case_status_name(CaseStatus s) {
  switch (s) {
    case CaseStatus::Pass: return "PASS";
    case CaseStatus::Fail: return "FAIL";
    case CaseStatus::Skip: return "SKIP";
  }
  return "?";
}

TensorCheck compare_tensors(const std::string& name, const Tensor& actual, const Tensor& expected, double atol,
                            double rtol) {
  TensorCheck c;
  c.name = name;
  if (actual.shape() != expected.shape()) {
    c.note = "shape " + shape_str(actual.shape()) + ", expected " + shape_str(expected.shape());
    return c;
  }
  const bool integral = expected.dtype() == DType::I64 || expected.dtype() == DType::I32 || expected.dtype() == DType::U8;
  if (integral) {
    Tensor a = actual.to_f32(), e = expected.to_f32();
    c.pass = true;
    for (int64_t i = 0; i < e.numel(); ++i) {
      double d = std::fabs(static_cast<double>(a.data<float>()[i]) - e.data<float>()[i]);
      c.max_abs = std::max(c.max_abs, d);
      if (d != 0 && c.pass) {
        c.pass = false;
        c.note = "first difference at flat index " + std::to_string(i) + ": got " +
                 std::to_string(static_cast<int64_t>(a.data<float>()[i])) + ", expected " +
                 std::to_string(static_cast<int64_t>(e.data<float>()[i]));
      }
    }
    return c;
  }
  Tensor a = actual.to_f32(), e = expected.to_f32();
  c.pass = true;
  for (int64_t i = 0; i < e.numel(); ++i) {
    double av = a.data<float>()[i], ev = e.data<float>()[i];
    double d = std::fabs(av - ev);
    if (std::isnan(av) != std::isnan(ev)) d = INFINITY;
    c.max_abs = std::max(c.max_abs, d);
    if (ev != 0) c.max_rel = std::max(c.max_rel, d / std::fabs(ev));
    if (!(d <= atol + rtol * std::fabs(ev))) c.pass = false;
  }
  return c;
}

namespace {

bool selected(const VerifyOptions& o, const std::string& key) {
  if (o.only.empty()) return true;
  for (const auto& f : o.only) {
    if (f == key) return true;
    // "preprocess:clip_224" selects "preprocess:clip_224/<image>"
    if (key.rfind(f + "/", 0) == 0) return true;
    // "tokenizer" selects every "tokenizer:<name>", "preprocess" every "preprocess:<name>/..."
    if (key.rfind(f + ":", 0) == 0) return true;
  }
  return false;
}

TensorMap load_all(const std::string& path) {
  auto f = SafetensorsFile::open(path);
  TensorMap m;
  for (const auto& [name, e] : f->entries()) m[name] = f->get(name);
  return m;
}

CaseResult run_model_case(const std::string& root, const json& rec) {
  CaseResult r;
  r.name = rec.value("name", "?");
  r.group = rec.value("family", "?");
  const FamilySpec* fam = find_family(r.group);
  if (!fam) {
    r.status = CaseStatus::Skip;
    r.message = "family '" + r.group + "' not supported yet";
    return r;
  }
  try {
    std::string model_dir = root + "/" + rec.at("model").get<std::string>();
    TensorMap inputs = load_all(root + "/" + rec.at("inputs").get<std::string>());
    TensorMap expected = load_all(root + "/" + rec.at("expected").get<std::string>());
    double atol = rec.value("atol", 1e-4), rtol = rec.value("rtol", 1e-4);
    auto model = load_model(model_dir);
    TensorMap out = fam->run_fixture(*model, rec.value("task", ""), inputs, rec.value("meta", json::object()));
    r.status = CaseStatus::Pass;
    for (const auto& [name, exp] : expected) {
      auto it = out.find(name);
      TensorCheck c;
      if (it == out.end()) {
        c.name = name;
        c.note = "lumen does not produce this tensor";
      } else {
        c = compare_tensors(name, it->second, exp, atol, rtol);
      }
      if (!c.pass) r.status = CaseStatus::Fail;
      r.checks.push_back(c);
    }
  } catch (const std::exception& e) {
    r.status = CaseStatus::Fail;
    r.message = e.what();
  }
  return r;
}

}  // namespace

std::vector<CaseResult> run_verify(const VerifyOptions& opts) {
  const std::string manifest_path = opts.root + "/manifest.json";
  json manifest = JsonView::load_file(manifest_path);
  LUMEN_CHECK(manifest.is_object(), manifest_path, ": not a JSON object");
  std::vector<CaseResult> results;
  auto finish = [&](CaseResult r, std::chrono::steady_clock::time_point t0) {
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (opts.on_result) opts.on_result(r);
    results.push_back(std::move(r));
  };
  if (manifest.contains("cases") && manifest["cases"].is_array()) {
    for (const auto& rec : manifest["cases"]) {
      if (!selected(opts, rec.value("family", ""))) continue;
      auto t0 = std::chrono::steady_clock::now();
      finish(run_model_case(opts.root, rec), t0);
    }
  }
  if (manifest.contains("tokenizers") && manifest["tokenizers"].is_array()) {
    for (const auto& rec : manifest["tokenizers"]) {
      std::string key = "tokenizer:" + rec.value("name", std::string("?"));
      if (!selected(opts, key)) continue;
      auto t0 = std::chrono::steady_clock::now();
      finish(run_tokenizer_group(opts.root, rec), t0);
    }
  }
  if (manifest.contains("preprocess") && manifest["preprocess"].is_object() &&
      manifest["preprocess"].contains("entries")) {
    for (const auto& rec : manifest["preprocess"]["entries"]) {
      std::string key = "preprocess:" + rec.value("name", std::string("?"));
      if (!selected(opts, key)) continue;
      auto t0 = std::chrono::steady_clock::now();
      finish(run_preprocess_entry(opts.root, rec, manifest["preprocess"]), t0);
    }
  }
  return results;
}

}  // namespace lumen
