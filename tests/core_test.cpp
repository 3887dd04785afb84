#include <gtest/gtest.h>

#include "core/half.h"
#include "core/tensor.h"

namespace lumen {
TEST(Tensor, ZerosAndReshape) {
  Tensor t = Tensor::zeros({2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.reshape({3, 2}).dim(0), 3);
  EXPECT_THROW(t.reshape({4, 2}), Error);
}
TEST(Half, RoundTrip) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f}) EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.5f)), 1.5f);
}
}  // namespace lumen

#include "core/threads.h"
namespace lumen {
TEST(Threads, ResizeAfterWorkRunsEveryChunkOnce) {
  // Regression: workers added after a parallel region must not rerun the previous job.
  for (int n : {1, 2, 3, 2, 1, 2}) {
    set_num_threads(n);
    std::vector<int> hits(1000, 0);
    parallel_for(1000, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
  set_num_threads(2);
}

TEST(Threads, DynamicPiecesRunEveryIndexOnce) {
  // Many more pieces than threads, claimed on demand; back-to-back regions must not leak
  // pieces into each other; nested calls run inline.
  for (int round = 0; round < 200; ++round) {
    std::vector<int> hits(997, 0);
    parallel_for_dynamic(997, 1 + round % 50, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) hits[static_cast<size_t>(i)]++;
      parallel_for_dynamic(4, 1, [](int64_t, int64_t) {});
    });
    for (int h : hits) ASSERT_EQ(h, 1) << "round " << round;
  }
  parallel_for_dynamic(0, 8, [](int64_t, int64_t) { FAIL(); });
}
}  // namespace lumen
