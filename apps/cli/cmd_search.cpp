// lumen search: text-to-image retrieval over folders of images, with embeddings kept in an
// SQLite index that only embeds new or changed files on each --add. Any model with contrastive
// embeddings works (CLIP, SigLIP, BLIP retrieval); one with a matching head (BLIP's ITM) can
// re-rank the best hits with it (--rerank), as the BLIP paper retrieves.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "apps/cli/progress.h"
#include "runtime/image_index.h"

namespace lumen::cli {
namespace {

struct SearchArgs {
  std::string model, index, add, query;
  size_t top = 5, rerank = 0;
  int batch = 8;
  DecodeOptions decode;
  CommonFlags common;
};

// Re-scores the first a.rerank hits with the model's matching head and sorts them by its
// probability; they stay ahead of the hits it did not see (BLIP: ITC finds, ITM orders).
// Images that can no longer be read keep their place after the re-scored ones, with a warning.
void rerank(const DualEncoderSession& session, const SearchArgs& a, std::vector<SearchHit>* hits,
            std::vector<std::optional<float>>* match) {
  const size_t k = std::min(a.rerank, hits->size());
  std::vector<Image> images;
  std::vector<size_t> which;
  for (size_t i = 0; i < k; ++i) {
    try {
      images.push_back(decode_image_file((*hits)[i].path, a.decode));
      which.push_back(i);
    } catch (const Error& e) {
      std::fprintf(stderr, "lumen search: cannot re-rank %s\n", e.what());
    }
  }
  const size_t step = static_cast<size_t>(std::max(1, a.batch));
  for (size_t start = 0; start < images.size(); start += step) {
    const size_t end = std::min(images.size(), start + step);
    Tensor p = session.match_probabilities(
        {images.begin() + static_cast<std::ptrdiff_t>(start), images.begin() + static_cast<std::ptrdiff_t>(end)},
        a.query);  // [end - start]
    for (size_t j = start; j < end; ++j) (*match)[which[j]] = p.data<float>()[j - start];
  }
  std::vector<size_t> order(k);
  for (size_t i = 0; i < k; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const auto& mx = (*match)[x];
    const auto& my = (*match)[y];
    if (mx.has_value() != my.has_value()) return mx.has_value();
    return mx && *mx > *my;
  });
  std::vector<SearchHit> sorted_hits;
  std::vector<std::optional<float>> sorted_match;
  for (size_t i : order) {
    sorted_hits.push_back((*hits)[i]);
    sorted_match.push_back((*match)[i]);
  }
  std::copy(sorted_hits.begin(), sorted_hits.end(), hits->begin());
  std::copy(sorted_match.begin(), sorted_match.end(), match->begin());
}

int run(const SearchArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(a.add.empty() != a.query.empty(), "give either --add DIR or --query TEXT");
  LUMEN_CHECK(a.rerank == 0 || !a.query.empty(), "--rerank applies to a --query");
  auto session = DualEncoderSession::open(a.model);
  LUMEN_CHECK(a.rerank == 0 || session.can_match(), "--rerank needs an image-text matching head (a BLIP retrieval ",
              "checkpoint, BlipForImageTextRetrieval); a ", session.model().family(), " model has none");
  ImageIndex index = ImageIndex::open(a.index, a.model, session.model().family(), session.embedding_dim());
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
  auto hits = index.query(q, std::max(a.top, a.rerank));
  std::vector<std::optional<float>> match(hits.size());
  if (a.rerank > 0) rerank(session, a, &hits, &match);
  hits.resize(std::min(hits.size(), a.top));
  if (a.common.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < hits.size(); ++i) {
      nlohmann::json row = {{"path", hits[i].path}, {"score", hits[i].score}};
      if (match[i]) row["itm_probability"] = *match[i];
      rows.push_back(row);
    }
    nlohmann::json out = {{"query", a.query}, {"results", rows}};
    if (a.rerank > 0) out["reranked"] = std::min(a.rerank, match.size());
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    if (hits.empty()) std::printf("index %s is empty: add images with --add DIR\n", a.index.c_str());
    for (size_t i = 0; i < hits.size(); ++i) {
      if (match[i])
        std::printf("%2zu. itm %.4f  cosine %.4f  %s\n", i + 1, *match[i], hits[i].score, hits[i].path.c_str());
      else
        std::printf("%2zu. %.4f  %s\n", i + 1, hits[i].score, hits[i].path.c_str());
    }
  }
  return 0;
}

Register reg({"search", "Text-to-image search over folders, with an incremental SQLite index",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<SearchArgs>();
                cmd->add_option("--model,-m", a->model,
                                "Checkpoint with image/text embeddings (CLIP, SigLIP, BLIP retrieval)")
                    ->required();
                cmd->add_option("--index", a->index, "SQLite index file (created if missing)")->required();
                cmd->add_option("--add", a->add, "Index the images under this folder (new/changed files only)");
                cmd->add_option("--query,-q", a->query, "Find the images that best match this text");
                cmd->add_option("--top,-k", a->top, "Results to show")->capture_default_str();
                cmd->add_option("--rerank", a->rerank,
                                "Re-score the best K hits with the model's image-text matching head and order "
                                "them by its probability (BLIP retrieval checkpoints)")
                    ->capture_default_str();
                cmd->add_option("--batch,-b", a->batch, "Images per forward pass while indexing")->capture_default_str();
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Examples:\n  lumen search -m clip-vit-base-patch32 --index photos.db --add ~/Pictures\n"
                    "  lumen search -m clip-vit-base-patch32 --index photos.db -q \"a dog on a beach\" -k 10\n"
                    "  lumen search -m blip-itm-base-coco --index photos-blip.db -q \"a dog on a beach\" --rerank 20");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli
