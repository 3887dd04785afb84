#!/usr/bin/env bash
# Everything CI checks, from a clean clone: dependencies, a Release build with the test suite,
# a second ASan+UBSan build of the tests, and a short run of each libFuzzer target.
# LUMEN_SKIP_SANITIZE=1 / LUMEN_SKIP_FUZZ=1 skip those parts for a quick local loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=$(nproc)

echo "== Release build + tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j "$JOBS"
ctest --test-dir build --output-on-failure -j "$JOBS"

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
  echo "== ASan+UBSan build + tests"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUMEN_SANITIZE=ON >/dev/null
  ninja -C build-asan -j "$JOBS" lumen_tests lumen_cli
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS"
fi

if [ "${LUMEN_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== libFuzzer targets (short runs)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLUMEN_BUILD_FUZZ=ON -DLUMEN_BUILD_TESTS=OFF >/dev/null
  ninja -C build-fuzz -j "$JOBS"
  for f in build-fuzz/*_fuzz; do
    name=$(basename "$f" _fuzz)
    # libFuzzer adds inputs to its corpus folder: give it a scratch copy, not the repo's seeds.
    corpus=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$corpus/"
    echo "-- $name"
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$f" -max_total_time="${LUMEN_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ \
      "$corpus" > "build-fuzz/$name.log" 2>&1 || { tail -n 40 "build-fuzz/$name.log"; exit 1; }
    tail -n 1 "build-fuzz/$name.log"
    rm -rf "$corpus"
  done
fi
echo "== all checks passed"
