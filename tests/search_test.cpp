// The incremental image index behind `lumen search`, on a make-tiny CLIP.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "families/family.h"
#include "runtime/image_index.h"
#include "runtime/tokenizer_files.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;

struct TinyClip {
  std::string dir;
  TinyClip() {
    dir = (fs::temp_directory_path() / ("lumen_search_model_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    MakeTinyOptions o;
    o.out_dir = dir;
    o.seed = 3;
    TokenizerFacts f = install_tokenizer_files(default_tokenizer_dir(), dir);
    o.vocab_size = f.vocab_size;
    o.token_ids = f.special_ids;
    find_family("clip")->make_tiny(o);
  }
};

TEST(ImageIndex, IncrementalAddAndQuery) {
  TinyClip model;
  auto session = DualEncoderSession::open(model.dir);
  fs::path root = fs::temp_directory_path() / ("lumen_search_imgs_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "sub");
  const std::string images = std::string(LUMEN_TEST_DATA) + "/preprocess/images";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(images)) {
    std::string ext = e.path().extension().string();
    if (ext != ".png" && ext != ".jpg") continue;
    fs::copy_file(e.path(), root / e.path().filename());
    names.push_back((root / e.path().filename()).string());
  }
  ASSERT_GE(names.size(), 3u);
  std::ofstream(root / "sub" / "broken.png") << "not an image";

  std::string db = (root / "index.db").string();
  Tensor probe = session.embed_texts({"x"});
  {
    ImageIndex idx = ImageIndex::open(db, model.dir, "clip", probe.dim(1));
    IndexUpdate u = idx.add_folder(root.string(), session, {}, 4, {});
    EXPECT_EQ(u.added, names.size());
    EXPECT_EQ(u.failed, 1u);
    EXPECT_EQ(idx.size(), names.size());
    // Second pass: nothing new.
    IndexUpdate again = idx.add_folder(root.string(), session, {}, 4, {});
    EXPECT_EQ(again.added + again.updated, 0u);
    EXPECT_EQ(again.unchanged, names.size());
  }
  // A removed file is dropped; the index survives reopening.
  fs::remove(names[0]);
  ImageIndex idx = ImageIndex::open(db, model.dir, "clip", probe.dim(1));
  IndexUpdate u = idx.add_folder(root.string(), session, {}, 4, {});
  EXPECT_EQ(u.removed, 1u);
  EXPECT_EQ(idx.size(), names.size() - 1);

  // Ranking equals the cosine order of directly computed embeddings.
  Tensor q = session.embed_texts({"a colourful gradient"});
  auto hits = idx.query(q, 100);
  ASSERT_EQ(hits.size(), names.size() - 1);
  for (const auto& h : hits) {
    Tensor e = session.embed_image_files({h.path}, {});
    double dot = 0;
    for (int64_t i = 0; i < e.dim(1); ++i) dot += e.data<float>()[i] * q.data<float>()[i];
    EXPECT_NEAR(h.score, dot, 1e-5) << h.path;
  }
  for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);

  // Another model's embeddings are refused.
  EXPECT_THROW(ImageIndex::open(db, "/some/other/model", "clip", probe.dim(1)), Error);
  fs::remove_all(root);
  fs::remove_all(model.dir);
}

}  // namespace
}  // namespace lumen
