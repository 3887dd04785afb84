#!/usr/bin/env bash
# Everything CI checks, from a clean clone: dependencies, a Release build with the test suite,
# a second ASan+UBSan build of the tests, and a short run of each libFuzzer target.
# LUMEN_SKIP_SANITIZE=1 skips the sanitizer build (and so the fuzz runs), LUMEN_SKIP_FUZZ=1 only
# the fuzz runs, for a quick local loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=$(nproc)

echo "== Release build + tests"
# Tests ON explicitly: quickstart.sh configures the same build dir with them OFF.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLUMEN_BUILD_TESTS=ON >/dev/null
ninja -C build -j "$JOBS"
ctest --test-dir build --output-on-failure --no-tests=error -j "$JOBS"

echo "== Tokenizers against the JS reference (tokenizers.js, fixed seed)"
# Runs from tests/data/tokenizers alone (all four kinds, 5000 strings each); the full-size
# Qwen/LLaMA-3 files are added when ../shared/tokenizers or $LUMEN_SHARED_TOKENIZERS exists.
(cd tests/diff && npm ci --no-audit --no-fund --loglevel=error)
node tests/diff/tokenizer_diff.mjs --lumen build/lumen --n "${LUMEN_DIFF_STRINGS:-5000}"

echo "== lumen serve with real clients (openai npm client, headless Chromium, bad input)"
# Each script starts its own `lumen serve` on a free port against make-tiny checkpoints.
(cd tests/server && npm ci --no-audit --no-fund --loglevel=error)
node tests/server/openai_client.mjs --lumen build/lumen
node tests/server/bad_input.mjs --lumen build/lumen
node tests/server/chromium.mjs --lumen build/lumen --out build  # screenshots: build/server-*.png

if [ "${LUMEN_SKIP_SANITIZE:-0}" != 1 ]; then
  # One clang build serves both checks: the library is compiled once with ASan+UBSan (and the
  # fuzzer's coverage hooks, which the sanitizer runtime satisfies for ordinary programs); the
  # tests and the CLI link it as usual, each fuzz/<name>_fuzz.cpp links libFuzzer on top.
  # -g1 (line tables) is enough for symbolized reports and compiles much faster than -g.
  echo "== ASan+UBSan build (clang) + tests"
  CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DLUMEN_SANITIZE=ON -DLUMEN_BUILD_FUZZ=ON \
    -DLUMEN_BUILD_BENCH=OFF >/dev/null
  ninja -C build-asan -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j "$JOBS"

  if [ "${LUMEN_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== libFuzzer targets (short runs)"
    for f in build-asan/*_fuzz; do
      name=$(basename "$f" _fuzz)
      # libFuzzer adds inputs to its corpus folder: give it a scratch copy, not the repo's seeds.
      corpus=$(mktemp -d)
      [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$corpus/"
      echo "-- $name"
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$f" -max_total_time="${LUMEN_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -artifact_prefix=build-asan/ \
        "$corpus" > "build-asan/$name.log" 2>&1 || { tail -n 40 "build-asan/$name.log"; exit 1; }
      tail -n 1 "build-asan/$name.log"
      rm -rf "$corpus"
    done
  fi
fi
echo "== all checks passed"
