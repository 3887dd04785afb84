// lumen search: text-to-image retrieval over folders of images, with embeddings kept in an
// SQLite index that only embeds new or changed files on each --add.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "apps/cli/progress.h"
#include "runtime/image_index.h"

namespace lumen::cli {
namespace {

struct SearchArgs {
  std::string model, index, add, query;
  size_t top = 5;
  int batch = 8;
  DecodeOptions decode;
  CommonFlags common;
};

int run(const SearchArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(a.add.empty() != a.query.empty(), "give either --add DIR or --query TEXT");
  auto session = DualEncoderSession::open(a.model);
  Tensor probe = session.embed_texts({"probe"});
  ImageIndex index = ImageIndex::open(a.index, a.model, session.model().family(), probe.dim(1));
  if (!a.add.empty()) {
    std::unique_ptr<ProgressBar> bar;
    IndexUpdate u = index.add_folder(a.add, session, a.decode, a.batch, [&](size_t done, size_t total) {
      if (!bar) bar = std::make_unique<ProgressBar>("indexing", total, !a.common.json);
      bar->update(done);
    });
    for (const auto& e : u.errors) std::fprintf(stderr, "lumen search: skipped %s\n", e.c_str());
    if (a.common.json) {
      std::printf("%s\n", nlohmann::json{{"index", a.index}, {"scanned", u.scanned}, {"added", u.added},
                                         {"updated", u.updated}, {"unchanged", u.unchanged}, {"removed", u.removed},
                                         {"failed", u.failed}, {"errors", u.errors}, {"total", index.size()}}
                              .dump(2)
                              .c_str());
    } else {
      std::printf("%s: %zu images scanned: %zu added, %zu updated, %zu unchanged, %zu removed, %zu unreadable; %zu in index\n",
                  a.index.c_str(), u.scanned, u.added, u.updated, u.unchanged, u.removed, u.failed, index.size());
    }
    return 0;
  }
  Tensor q = session.embed_texts({a.query});
  auto hits = index.query(q, a.top);
  if (a.common.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& h : hits) rows.push_back({{"path", h.path}, {"score", h.score}});
    std::printf("%s\n", nlohmann::json{{"query", a.query}, {"results", rows}}.dump(2).c_str());
  } else {
    if (hits.empty()) std::printf("index %s is empty: add images with --add DIR\n", a.index.c_str());
    for (size_t i = 0; i < hits.size(); ++i) std::printf("%2zu. %.4f  %s\n", i + 1, hits[i].score, hits[i].path.c_str());
  }
  return 0;
}

Register reg({"search", "Text-to-image search over folders, with an incremental SQLite index",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<SearchArgs>();
                cmd->add_option("--model,-m", a->model, "Dual-encoder checkpoint directory (CLIP, SigLIP)")->required();
                cmd->add_option("--index", a->index, "SQLite index file (created if missing)")->required();
                cmd->add_option("--add", a->add, "Index the images under this folder (new/changed files only)");
                cmd->add_option("--query,-q", a->query, "Find the images that best match this text");
                cmd->add_option("--top,-k", a->top, "Results to show")->capture_default_str();
                cmd->add_option("--batch,-b", a->batch, "Images per forward pass while indexing")->capture_default_str();
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer("Examples:\n  lumen search -m clip-vit-base-patch32 --index photos.db --add ~/Pictures\n"
                            "  lumen search -m clip-vit-base-patch32 --index photos.db -q \"a dog on a beach\" -k 10");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli
