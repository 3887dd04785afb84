// Families against the golden fixtures (copied into tests/data/fixtures), plus loader errors.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "families/family.h"
#include "core/half.h"
#include "formats/safetensors.h"
#include "runtime/verify.h"
#include "tests/test_util.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;
using testing_util::expect_family_passes;
using testing_util::kFixtures;
using testing_util::temp_dir;

TEST(Families, ClipMatchesReference) { expect_family_passes("clip"); }
TEST(Families, SiglipMatchesReference) { expect_family_passes("siglip"); }

TEST(Families, UnknownArchitectureIsNamed) {
  std::string dir = temp_dir("unknown_arch");
  std::ofstream(dir + "/config.json") << R"({"model_type": "mamba", "architectures": ["MambaForCausalLM"]})";
  try {
    load_model(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("unknown architecture"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MambaForCausalLM"), std::string::npos) << msg;
  }
}

// Copies the tiny CLIP fixture and rewrites its weights with one tensor changed by `edit`.
std::string clip_with_edited_weights(const std::string& name,
                                     const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
  std::string dir = temp_dir(name);
  fs::copy_file(kFixtures + "/models/clip/config.json", dir + "/config.json");
  auto f = SafetensorsFile::open(kFixtures + "/models/clip/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [n, e] : f->entries()) tensors.emplace_back(n, f->get(n).clone());
  edit(tensors);
  write_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

TEST(Families, MissingTensorIsNamed) {
  std::string dir = clip_with_edited_weights("missing", [](std::vector<std::pair<std::string, Tensor>>& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const std::pair<std::string, Tensor>& p) { return p.first == "visual_projection.weight"; }), t.end());
  });
  try {
    load_model(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("visual_projection.weight"), std::string::npos) << e.what();
  }
}

TEST(Families, WrongShapeIsNamed) {
  std::string dir = clip_with_edited_weights("wrong_shape", [](std::vector<std::pair<std::string, Tensor>>& t) {
    for (auto& [n, x] : t)
      if (n == "vision_model.embeddings.patch_embedding.weight") x = Tensor::zeros({32, 3, 4, 4});
  });
  try {
    load_model(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("patch_embedding.weight' has shape [32, 3, 4, 4], config wants [32, 3, 8, 8]"), std::string::npos)
        << msg;
  }
}

TEST(Families, Fp16CheckpointLoadsAndAgrees) {
  // Half-precision storage: converted on load; results within f16 rounding of the f32 model.
  std::string dir = clip_with_edited_weights("f16", [](std::vector<std::pair<std::string, Tensor>>& t) {
    for (auto& [n, x] : t) {
      if (x.dtype() != DType::F32 || x.ndim() == 0) continue;
      Tensor h = Tensor::zeros(DType::F16, x.shape());
      for (int64_t i = 0; i < x.numel(); ++i)
        static_cast<uint16_t*>(h.raw())[i] = f32_to_f16(x.data<float>()[i]);
      x = h;
    }
  });
  auto a = load_model(kFixtures + "/models/clip");
  auto b = load_model(dir);
  Tensor px = Tensor::zeros({1, 3, 32, 32});
  for (int64_t i = 0; i < px.numel(); ++i) px.data<float>()[i] = static_cast<float>((i % 17) - 8) / 8.f;
  Tensor ea = dynamic_cast<DualEncoder&>(*a).image_embeds(px);
  Tensor eb = dynamic_cast<DualEncoder&>(*b).image_embeds(px);
  TensorCheck c = compare_tensors("image_embeds", eb, ea, 5e-3, 0);
  EXPECT_TRUE(c.pass) << c.max_abs;
}

TEST(Families, MakeTinyRoundTrips) {
  for (const auto& family : {"clip", "siglip"}) {
    std::string dir = temp_dir(std::string("tiny_") + family);
    MakeTinyOptions o;
    o.out_dir = dir;
    o.seed = 7;
    find_family(family)->make_tiny(o);
    auto m = load_model(dir);
    EXPECT_EQ(m->family(), family);
    auto& de = dynamic_cast<DualEncoder&>(*m);
    Tensor px = Tensor::zeros({2, 3, 32, 32});
    Tensor e = de.image_embeds(px);
    ASSERT_EQ(e.dim(0), 2);
    double norm = 0;
    for (int64_t i = 0; i < e.dim(1); ++i) norm += e.data<float>()[i] * e.data<float>()[i];
    EXPECT_NEAR(norm, 1.0, 1e-5);
    // Same seed, same weights.
    std::string dir2 = temp_dir(std::string("tiny2_") + family);
    o.out_dir = dir2;
    find_family(family)->make_tiny(o);
    auto w1 = SafetensorsFile::open(dir + "/model.safetensors");
    auto w2 = SafetensorsFile::open(dir2 + "/model.safetensors");
    for (const auto& [n, e1] : w1->entries()) {
      Tensor t1 = w1->get(n), t2 = w2->get(n);
      ASSERT_EQ(t1.nbytes(), t2.nbytes());
      EXPECT_EQ(std::memcmp(t1.raw(), t2.raw(), t1.nbytes()), 0) << n;
    }
  }
}

}  // namespace
}  // namespace lumen
