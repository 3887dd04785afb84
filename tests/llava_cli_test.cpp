// `lumen run` and `lumen chat` end to end on make-tiny LLaVA and LLaVA-NeXT checkpoints written
// with the bundled LLaMA-2 tokenizer and the families' chat templates (random weights: the
// text is meaningless, the pipeline is what is checked).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "families/family.h"
#include "runtime/vlm_session.h"
#include "tests/test_util.h"

namespace lumen {
namespace {

using nlohmann::json;
using testing_util::run_cli;

const std::string kImage = std::string(LUMEN_SOURCE_DIR) + "/data/images/example.jpg";

// One make-tiny checkpoint per family for the whole suite.
const std::string& tiny(const std::string& family) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(family);
  if (it != dirs.end()) return it->second;
  std::string dir = testing_util::temp_dir("cli_" + family);
  auto r = run_cli("make-tiny -f " + family + " -o " + dir + " --force --seed 5");
  EXPECT_EQ(r.status, 0) << r.output;
  return dirs[family] = dir;
}

json run_json(const std::string& args) {
  auto r = run_cli(args + " --json", /*merge_stderr=*/false);
  EXPECT_EQ(r.status, 0) << r.output;
  return json::parse(r.output);
}

TEST(LlavaCli, RunWithTwoImagesUsesTheTemplateAndCountsImageTokens) {
  const std::string& dir = tiny("llava");
  json j = run_json("run -m " + dir + " -i " + kImage + " -i " + kImage + " -p 'Compare the two images.' -n 6");
  EXPECT_EQ(j["usage"]["images"], 2);
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  EXPECT_EQ(j["tokens"].size(), 6u);
  EXPECT_EQ(j["finish_reason"], "length");
  // The documented "grounding" field: the answer parsed in LLaVA-1.5's box format.
  ASSERT_TRUE(j.contains("grounding"));
  EXPECT_EQ(j["grounding"]["format"], "llava_1_5");
  EXPECT_TRUE(j["grounding"]["entities"].is_array());
  if (j["text"].get<std::string>().find('[') == std::string::npos) {
    EXPECT_EQ(j["grounding"]["text"], j["text"]);
  }
  // The prompt is the LLaVA-1.5 template around two markers, each expanded to 4x4 patches.
  VlmSession s = VlmSession::open(dir);
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array(
      {{{"role", "user"},
        {"content", {{{"type", "image"}}, {{"type", "image"}}, {{"type", "text"}, {"text", "Compare the two images."}}}}}});
  const std::string prompt = s.render_chat(msgs, true);
  EXPECT_EQ(prompt, "USER: <image>\n<image>\nCompare the two images. ASSISTANT:");
  const auto text_ids = s.tokenizer().encode(prompt).ids;  // markers are one id each
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int64_t>(text_ids.size()) - 2 + 2 * 16);
}

TEST(LlavaCli, StreamedTextEqualsJsonTextAndGreedyIsDeterministic) {
  const std::string& dir = tiny("llava");
  const std::string args = "run -m " + dir + " -i " + kImage + " -p 'What is this?' -n 8";
  json a = run_json(args), b = run_json(args);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  auto streamed = run_cli(args, /*merge_stderr=*/false);
  ASSERT_EQ(streamed.status, 0);
  EXPECT_EQ(streamed.output, a["text"].get<std::string>() + "\n");
  // Seeded sampling repeats itself too.
  json s1 = run_json(args + " --temperature 0.9 --top-k 50 --top-p 0.95 --seed 7");
  json s2 = run_json(args + " --temperature 0.9 --top-k 50 --top-p 0.95 --seed 7");
  EXPECT_EQ(s1["tokens"], s2["tokens"]);
}

TEST(LlavaCli, GroundParsesTheAnswerInTheLlava15Format) {
  // A chat VLM through `lumen ground`: the answer is parsed as LLaVA-1.5 boxes; with an
  // untrained model there may be none, but the run, the format and the JSON shape are real.
  const std::string& dir = tiny("llava");
  auto r = run_cli("ground -m " + dir + " -i " + kImage + " -p 'Where is the dog?' --max-new-tokens 4 --json",
                   /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  EXPECT_EQ(j["format"], "llava_1_5");
  EXPECT_LE(j["new_tokens"].get<int>(), 4);
  EXPECT_TRUE(j["grounding"]["entities"].is_array());
  // Families without a box format of their own need --format.
  auto bad = run_cli("ground -m " + tiny("llava") + " -i " + kImage + " -p x --format nope");
  EXPECT_NE(bad.status, 0);
}

TEST(LlavaCli, LlavaNextTilesTheImage) {
  const std::string& dir = tiny("llava_next");
  json j = run_json("run -m " + dir + " -i " + kImage + " -p 'Describe it.' -n 3");
  VlmSession s = VlmSession::open(dir);
  ImageInput img = s.process_image(decode_image_file(kImage));
  const int64_t image_tokens = s.model().image_token_count(img);
  EXPECT_GT(image_tokens, 16);  // base tile + the unpadded grid with newlines
  EXPECT_GT(img.pixel_values.dim(0), 1);
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array(
      {{{"role", "user"}, {"content", {{{"type", "image"}}, {{"type", "text"}, {"text", "Describe it."}}}}}});
  const auto ids = s.tokenizer().encode(s.render_chat(msgs, true)).ids;
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int64_t>(ids.size()) - 1 + image_tokens);
}

TEST(LlavaCli, ChatKeepsHistoryAndResets) {
  const std::string& dir = tiny("llava");
  std::string script = testing_util::temp_dir("chat_script") + "/in.txt";
  {
    std::ofstream f(script);
    f << "/image " << kImage << "\nWhat is it?\nAnd the colours?\n/reset\nHello\n/image /no/such.png\n/quit\n";
  }
  auto r = run_cli("chat -m " + dir + " -n 3 --json < " + script, /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<json> turns;
  for (std::string line; std::getline(lines, line);) turns.push_back(json::parse(line));
  ASSERT_EQ(turns.size(), 3u) << r.output;
  const int64_t p1 = turns[0]["usage"]["prompt_tokens"], p2 = turns[1]["usage"]["prompt_tokens"],
                p3 = turns[2]["usage"]["prompt_tokens"];
  EXPECT_GT(p1, 16);      // the image is in the first turn
  EXPECT_GT(p2, p1 + 3);  // the second turn carries the first, its answer and the image
  EXPECT_LT(p3, 16);      // after /reset: no image, a short text
  auto err = run_cli("chat -m " + dir + " -n 1 < " + script);
  EXPECT_NE(err.output.find("/no/such.png"), std::string::npos) << err.output;
}

TEST(LlavaCli, MarkerAndContextErrorsAreClear) {
  const std::string& dir = tiny("llava");
  auto r = run_cli("run -m " + dir + " --raw -i " + kImage + " -p 'USER: <image> <image> hi ASSISTANT:' -n 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("2 image marker(s)"), std::string::npos) << r.output;
  r = run_cli("run -m " + dir + " -p 'hi' -n 100000");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("context overflow"), std::string::npos) << r.output;
  r = run_cli("run -m " + dir + " -p 'hi' --top-p 0");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("top_p"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lumen
