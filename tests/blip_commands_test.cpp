// BLIP through the generic commands: `lumen search` with a BLIP retrieval checkpoint (its
// contrastive embeddings against the reference fixture, the index and ITM re-ranking end to
// end) and `lumen run` with BLIP VQA / captioning and BLIP-2 checkpoints, on make-tiny models.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "families/blip/blip.h"
#include "formats/safetensors.h"
#include "runtime/dual_encoder_session.h"
#include "tests/test_util.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;
using testing_util::kFixtures;
using testing_util::run_cli;
using testing_util::temp_dir;

const std::string kImage = std::string(LUMEN_SOURCE_DIR) + "/data/images/example.jpg";

std::string make_tiny(const std::string& family, const std::string& arch) {
  std::string dir = temp_dir("blipcmd_" + family + "_" + arch);
  auto r = run_cli("make-tiny -f " + family + " --arch " + arch + " -o " + dir + " --force --seed 5");
  EXPECT_EQ(r.status, 0) << r.output;
  return dir;
}

nlohmann::json run_json(const std::string& args) {
  auto r = run_cli(args + " --json", /*merge_stderr=*/false);
  EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
  try {
    return nlohmann::json::parse(r.output);
  } catch (const std::exception&) {
    ADD_FAILURE() << args << ": not JSON: " << r.output;
    return nlohmann::json::object();
  }
}

// The index's embeddings are the ones BlipForImageTextRetrieval(use_itm_head=False) compares:
// image x text of the blip_itc fixture equals the reference cosine matrix.
TEST(BlipSearch, ContrastiveEmbeddingsMatchTheReference) {
  auto model = load_model(kFixtures + "/models/blip_retrieval");
  const DualEncoder* de = model->dual_encoder();
  ASSERT_NE(de, nullptr);
  auto in = SafetensorsFile::open(kFixtures + "/cases/blip_itc/inputs.safetensors");
  auto want = SafetensorsFile::open(kFixtures + "/cases/blip_itc/expected.safetensors");
  Tensor img = de->image_embeds(in->get("pixel_values"));                         // [2, P]
  Tensor txt = de->text_embeds(in->get("input_ids"), in->get("attention_mask"));  // [3, P]
  Tensor cos = want->get("itm_score");                                            // [2, 3]
  ASSERT_EQ(img.dim(1), de->embedding_dim());
  ASSERT_EQ(txt.dim(1), de->embedding_dim());
  ASSERT_EQ(cos.shape(), (Shape{img.dim(0), txt.dim(0)}));
  const int64_t P = de->embedding_dim();
  for (int64_t i = 0; i < img.dim(0); ++i) {
    double norm = 0;
    for (int64_t p = 0; p < P; ++p) norm += std::pow(img.data<float>()[i * P + p], 2);
    EXPECT_NEAR(norm, 1.0, 1e-5);
    for (int64_t t = 0; t < txt.dim(0); ++t) {
      double dot = 0;
      for (int64_t p = 0; p < P; ++p) dot += img.data<float>()[i * P + p] * txt.data<float>()[t * P + p];
      EXPECT_NEAR(dot, cos.data<float>()[i * txt.dim(0) + t], 1e-4) << "image " << i << " text " << t;
    }
  }
  // Captioning and VQA checkpoints have no contrastive part.
  EXPECT_EQ(load_model(kFixtures + "/models/blip_caption")->dual_encoder(), nullptr);
}

struct ImageFolder {
  std::string root;
  std::vector<std::string> files;
  ImageFolder() {
    root = temp_dir("blipcmd_images");
    const std::string src = std::string(LUMEN_TEST_DATA) + "/preprocess/images";
    for (const char* name : {"grad_224x224.png", "gray_80x120.png", "photo_640x427.jpg", "rgba_96x64.png"}) {
      fs::copy_file(fs::path(src) / name, fs::path(root) / name);
      files.push_back((fs::path(root) / name).string());
    }
  }
};

TEST(BlipSearch, IndexQueryAndRerankAgreeWithTheModel) {
  const std::string dir = make_tiny("blip", "tiny-retrieval");
  ImageFolder images;
  const std::string db = temp_dir("blipcmd_index") + "/index.db";
  nlohmann::json added = run_json("search -m " + dir + " --index " + db + " --add " + images.root);
  EXPECT_EQ(added["added"], images.files.size());
  EXPECT_EQ(added["total"], images.files.size());

  const std::string query = "a colourful gradient";
  nlohmann::json found = run_json("search -m " + dir + " --index " + db + " -q '" + query + "' -k 10");
  ASSERT_EQ(found["results"].size(), images.files.size());

  // The model's own scores, computed here without the index or the DualEncoder view.
  auto model = load_model(dir);
  const auto& blip = dynamic_cast<const BlipModel&>(*model);
  Tokenizer tok = Tokenizer::from_dir(dir);
  std::vector<int64_t> q = tok.encode(query, true).ids;
  const int64_t L = static_cast<int64_t>(q.size());
  Tensor ids = Tensor::from_ids(q, {1, L}), mask = Tensor::from_ids(std::vector<int64_t>(q.size(), 1), {1, L});
  ImageProcessor proc = ImageProcessor::from_file(dir + "/preprocessor_config.json");
  std::map<std::string, float> cosine, itm;
  for (const auto& f : images.files) {
    Tensor img = blip.image_embeds(proc.process({decode_image_file(f)}).pixel_values);
    cosine[f] = blip.itc_scores(img, ids, mask).data<float>()[0];
    Tensor logits = blip.itm_logits(img, ids, mask);
    itm[f] = 1.f / (1.f + std::exp(logits.data<float>()[0] - logits.data<float>()[1]));
  }
  double previous = 2;
  for (const auto& r : found["results"]) {
    const std::string path = r["path"];
    ASSERT_TRUE(cosine.count(path)) << path;
    EXPECT_NEAR(r["score"].get<double>(), cosine[path], 1e-4) << path;
    EXPECT_LE(r["score"].get<double>(), previous);
    EXPECT_FALSE(r.contains("itm_probability"));
    previous = r["score"].get<double>();
  }

  // --rerank 3: the three best by cosine, ordered by the ITM probability; the fourth stays last.
  nlohmann::json reranked = run_json("search -m " + dir + " --index " + db + " -q '" + query + "' -k 10 --rerank 3");
  ASSERT_EQ(reranked["results"].size(), images.files.size());
  EXPECT_EQ(reranked["reranked"], 3);
  std::set<std::string> top3, got3;
  for (int i = 0; i < 3; ++i) top3.insert(found["results"][i]["path"].get<std::string>());
  previous = 2;
  for (int i = 0; i < 3; ++i) {
    const auto& r = reranked["results"][i];
    const std::string path = r["path"];
    got3.insert(path);
    ASSERT_TRUE(r.contains("itm_probability")) << r.dump();
    EXPECT_NEAR(r["itm_probability"].get<double>(), itm[path], 1e-4) << path;
    EXPECT_NEAR(r["score"].get<double>(), cosine[path], 1e-4) << path;
    EXPECT_LE(r["itm_probability"].get<double>(), previous);
    previous = r["itm_probability"].get<double>();
  }
  EXPECT_EQ(got3, top3);
  EXPECT_EQ(reranked["results"][3]["path"], found["results"][3]["path"]);
  EXPECT_FALSE(reranked["results"][3].contains("itm_probability"));

  // The text output says both scores of a re-ranked hit.
  auto text = run_cli("search -m " + dir + " --index " + db + " -q '" + query + "' --rerank 2 2>/dev/null", false);
  EXPECT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("itm "), std::string::npos) << text.output;
  fs::remove_all(images.root);
}

TEST(BlipSearch, RefusesModelsWithoutTheNeededParts) {
  const std::string db = temp_dir("blipcmd_refuse") + "/index.db";
  // A captioning checkpoint has no contrastive projections.
  auto r = run_cli("search -m " + make_tiny("blip", "tiny") + " --index " + db + " -q x");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("BlipForImageTextRetrieval"), std::string::npos) << r.output;
  // CLIP has embeddings but no matching head to re-rank with.
  r = run_cli("search -m " + make_tiny("clip", "tiny") + " --index " + db + " -q x --rerank 3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--rerank needs an image-text matching head"), std::string::npos) << r.output;
}

TEST(BlipRun, VqaAnswerEqualsCaptionWithTheQuestion) {
  const std::string dir = make_tiny("blip", "tiny-vqa");
  const std::string question = "'what is in the picture?'";
  for (int beams : {1, 3}) {
    const std::string b = std::to_string(beams);
    nlohmann::json run = run_json("run -m " + dir + " -i " + kImage + " -p " + question + " --beams " + b + " -n 6");
    nlohmann::json cap = run_json("caption -m " + dir + " -i " + kImage + " -p " + question + " --beams " + b +
                                  " --max-new-tokens 6 --min-new-tokens 0");
    EXPECT_EQ(run["text"], cap["caption"]) << "beams " << beams;
    EXPECT_EQ(run["tokens"], cap["token_ids"]) << "beams " << beams;
    EXPECT_EQ(run["task"], "question answering");
    EXPECT_EQ(run["beams"], beams);
    EXPECT_EQ(run["usage"]["images"], 1);
    EXPECT_GT(run["usage"]["prompt_tokens"].get<int>(), 2);  // [CLS] question [SEP]
    const int n = run["usage"]["completion_tokens"];
    EXPECT_GE(n, 1);
    EXPECT_LE(n, 6);
    EXPECT_TRUE(run["finish_reason"] == "stop" || run["finish_reason"] == "length") << run.dump();
    if (n < 6) {
      EXPECT_EQ(run["finish_reason"], "stop");
    }
  }
  // Without --json: the answer on stdout.
  auto plain = run_cli("run -m " + dir + " -i " + kImage + " -p " + question + " -n 6 2>/dev/null", false);
  EXPECT_EQ(plain.status, 0);
  nlohmann::json greedy = run_json("caption -m " + dir + " -i " + kImage + " -p " + question +
                                   " --beams 1 --max-new-tokens 6 --min-new-tokens 0");
  EXPECT_EQ(plain.output, greedy["caption"].get<std::string>() + "\n");
}

TEST(BlipRun, CaptionerContinuesThePromptAndBlip2UsesItsLm) {
  const std::string dir = make_tiny("blip", "tiny");
  nlohmann::json run = run_json("run -m " + dir + " -i " + kImage + " -p 'a picture of' --beams 2 -n 5");
  nlohmann::json cap = run_json("caption -m " + dir + " -i " + kImage +
                                " -p 'a picture of' --beams 2 --max-new-tokens 5 --min-new-tokens 0");
  EXPECT_EQ(run["text"], cap["caption"]);
  EXPECT_EQ(run["task"], "captioning");
  // The caption starts with its prompt, as decoding BlipForConditionalGeneration.generate's output does.
  EXPECT_EQ(run["text"].get<std::string>().rfind("a picture of", 0), 0u) << run["text"];
  EXPECT_EQ(run["usage"]["prompt_tokens"], 4);  // [DEC] a picture of

  for (const char* family : {"blip2_opt", "blip2_t5"}) {
    const std::string d2 = make_tiny(family, "tiny");
    nlohmann::json r2 = run_json("run -m " + d2 + " -i " + kImage + " -p 'Question: what is it? Answer:' -n 4");
    nlohmann::json c2 = run_json("caption -m " + d2 + " -i " + kImage +
                                 " -p 'Question: what is it? Answer:' --beams 1 --max-new-tokens 4 --min-new-tokens 0");
    EXPECT_EQ(r2["tokens"], c2["token_ids"]) << family;
    EXPECT_EQ(r2["text"], c2["caption"]) << family;
    EXPECT_EQ(r2["task"], "prompted generation") << family;
  }
}

TEST(BlipRun, UnsupportedCombinationsSayWhy) {
  const std::string vqa = make_tiny("blip", "tiny-vqa");
  struct Case {
    std::string args, says;
  };
  const std::vector<Case> cases = {
      {"run -m " + make_tiny("blip", "tiny-retrieval") + " -i " + kImage + " -p 'a cat?'", "BlipForImageTextRetrieval"},
      {"run -m " + vqa + " -p 'what is it?'", "needs exactly one image"},
      {"run -m " + vqa + " -i " + kImage + " -i " + kImage + " -p 'what?'", "needs exactly one image"},
      {"run -m " + vqa + " -i " + kImage + " -p ''", "give the question"},
      {"run -m " + vqa + " -i " + kImage + " -p 'what?' --temperature 0.7", "decodes greedily or by beam search"},
      {"run -m " + vqa + " -i " + kImage + " -p 'what?' --system hi", "--raw and --system are for chat models"},
      {"run -m " + make_tiny("clip", "tiny") + " -i " + kImage + " -p 'hi'", "lumen run takes chat models"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace lumen
