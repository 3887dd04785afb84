// lumen eval: benchmarks computed from a model's outputs. `refexp` is RefCOCO-style referring
// expression comprehension: Acc@0.5 = share of expressions whose first predicted box has
// IoU >= 0.5 with the annotated box.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/progress.h"
#include "core/error.h"
#include "runtime/grounding_session.h"

namespace lumen::cli {
namespace {

struct RefexpArgs {
  std::string model, data, outputs, format, geometry = "processor", prompt = "<phrase>{expression}</phrase>";
  double threshold = 0.5;
  int64_t limit = 0, max_new_tokens = 32;
  bool quiet = false;
  CommonFlags common;
};

struct RefexpItem {
  std::string image, expression;
  grounding::Box box;
};

std::vector<RefexpItem> read_refexp(const std::string& path) {
  std::ifstream f(path);
  LUMEN_CHECK(f, path, ": cannot open");
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  std::vector<RefexpItem> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      fail(path, ":", n, ": not JSON: ", e.what());
    }
    LUMEN_CHECK(j.is_object() && j.contains("image") && j["image"].is_string() && j.contains("expression") &&
                    j["expression"].is_string() && j.contains("box") && j["box"].is_array() && j["box"].size() == 4,
                path, ":", n, ": expected {\"image\": str, \"expression\": str, \"box\": [x0, y0, x1, y1]}");
    RefexpItem it;
    std::filesystem::path img = j["image"].get<std::string>();
    it.image = img.is_absolute() ? img.string() : (base / img).string();
    it.expression = j["expression"].get<std::string>();
    for (const auto& v : j["box"]) LUMEN_CHECK(v.is_number(), path, ":", n, ": box values must be numbers");
    it.box = {j["box"][0].get<double>(), j["box"][1].get<double>(), j["box"][2].get<double>(), j["box"][3].get<double>()};
    LUMEN_CHECK(it.box.x1 > it.box.x0 && it.box.y1 > it.box.y0, path, ":", n, ": box needs x1 > x0 and y1 > y0");
    out.push_back(std::move(it));
  }
  return out;
}

std::vector<std::string> read_outputs(const std::string& path) {
  std::ifstream f(path);
  LUMEN_CHECK(f, path, ": cannot open");
  std::vector<std::string> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    LUMEN_CHECK(!j.is_discarded() && (j.is_string() || (j.is_object() && j.contains("output"))), path, ":", n,
                ": expected a JSON string or {\"output\": str}");
    out.push_back(j.is_string() ? j.get<std::string>() : j["output"].get<std::string>());
  }
  return out;
}

std::string fill(const std::string& tmpl, const std::string& expression) {
  std::string s = tmpl;
  const std::string key = "{expression}";
  for (size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + expression.size()))
    s.replace(p, key.size(), expression);
  return s;
}

int run_refexp(const RefexpArgs& a) {
  apply_common_flags(a.common);
  std::vector<RefexpItem> items = read_refexp(a.data);
  if (a.limit > 0 && static_cast<int64_t>(items.size()) > a.limit) items.resize(static_cast<size_t>(a.limit));
  LUMEN_CHECK(!items.empty(), a.data, ": no examples");
  GroundingOptions o;
  if (!a.format.empty()) {
    o.format = grounding::format_from_name(a.format);
    LUMEN_CHECK(o.format, "--format: unknown box format '", a.format, "'");
  }
  auto gm = geometry_mode_from_name(a.geometry);
  LUMEN_CHECK(gm, "--geometry: '", a.geometry, "' (expected processor, identity or pad-square)");
  o.geometry = *gm;
  o.max_new_tokens = a.max_new_tokens;
  std::vector<std::string> given;
  if (!a.outputs.empty()) {
    given = read_outputs(a.outputs);
    LUMEN_CHECK(given.size() >= items.size(), a.outputs, ": ", given.size(), " outputs for ", items.size(),
                " examples");
  }
  std::optional<GroundingSession> session;
  if (!a.model.empty()) session.emplace(GroundingSession::open(a.model, o));
  LUMEN_CHECK(session || (!given.empty() && o.format), "eval refexp needs --model, or --outputs with --format");
  const auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("refexp", items.size(), !a.quiet);
  int64_t correct = 0, no_box = 0;
  double iou_sum = 0;
  nlohmann::ordered_json per = nlohmann::ordered_json::array();
  for (size_t i = 0; i < items.size(); ++i) {
    const RefexpItem& it = items[i];
    const Image img = decode_image_file(it.image);
    grounding::GroundedText g;
    std::string raw;
    if (!given.empty()) {
      raw = given[i];
      g = session ? session->parse(raw, img.width, img.height)
                  : grounding::parse(*o.format, raw, geometry_for(o.geometry, nullptr, img.width, img.height));
    } else {
      GroundingResult r = session->ground(img, fill(a.prompt, it.expression));
      raw = r.raw;
      g = r.grounded;
    }
    // The prediction: the first box of the first entity that has one.
    std::optional<grounding::Box> pred;
    for (const auto& e : g.entities)
      if (!e.boxes.empty()) {
        pred = e.boxes.front();
        break;
      }
    const double v = pred ? grounding::iou(*pred, it.box) : 0.0;
    if (!pred) ++no_box;
    if (v >= a.threshold) ++correct;
    iou_sum += v;
    nlohmann::ordered_json row = {{"image", it.image}, {"expression", it.expression}, {"iou", v},
                                  {"correct", v >= a.threshold}};
    row["predicted"] = pred ? nlohmann::ordered_json{pred->x0, pred->y0, pred->x1, pred->y1} : nlohmann::ordered_json();
    per.push_back(row);
    bar.update(i + 1);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double n = static_cast<double>(items.size());
  nlohmann::ordered_json summary = {{"task", "refexp"},
                                    {"model", a.model},
                                    {"data", a.data},
                                    {"examples", items.size()},
                                    {"iou_threshold", a.threshold},
                                    {"correct", correct},
                                    {"accuracy", static_cast<double>(correct) / n},
                                    {"mean_iou", iou_sum / n},
                                    {"no_box", no_box},
                                    {"seconds", secs}};
  if (a.common.json) summary["per_example"] = per;
  std::printf("%s\n", summary.dump(2).c_str());
  return 0;
}

Register reg({"eval", "Evaluate a model on a benchmark file (refexp: RefCOCO-style Acc@0.5)",
              [](CLI::App* cmd) -> std::function<int()> {
                cmd->require_subcommand(1);
                auto a = std::make_shared<RefexpArgs>();
                CLI::App* r = cmd->add_subcommand("refexp", "Referring expressions: Acc@IoU from {image, expression, box} lines");
                r->add_option("--model,-m", a->model, "Checkpoint directory (KOSMOS-2, or a chat VLM with --format)");
                r->add_option("--data,-d", a->data,
                              "JSONL, one {\"image\": path (relative to the file), \"expression\": str, \"box\": "
                              "[x0, y0, x1, y1] in pixels} per line")
                    ->required();
                r->add_option("--outputs", a->outputs,
                              "JSONL of model outputs (strings or {\"output\": str}), one per example: score them "
                              "instead of running --model");
                r->add_option("--format", a->format, "Box format of the outputs (default: the model family's)");
                r->add_option("--geometry", a->geometry, "processor, identity or pad-square")->capture_default_str();
                r->add_option("--prompt", a->prompt, "Prompt template; {expression} is replaced")->capture_default_str();
                r->add_option("--iou", a->threshold, "IoU a prediction needs to count")->capture_default_str();
                r->add_option("--limit", a->limit, "Score only the first N examples");
                r->add_option("--max-new-tokens", a->max_new_tokens, "Longest answer")->capture_default_str();
                r->add_flag("--quiet,-q", a->quiet, "No progress bar");
                add_common_flags(r, &a->common);
                r->footer("Prints a JSON summary (accuracy = Acc@IoU); --json adds every example.\n"
                          "Example: lumen eval refexp -m kosmos-2-patch14-224 -d refcoco_val.jsonl");
                return [a] { return run_refexp(*a); };
              }});

}  // namespace
}  // namespace lumen::cli
