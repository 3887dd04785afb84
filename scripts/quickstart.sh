#!/usr/bin/env bash
# The main job on the bundled default: build lumen, write an UNTRAINED random-weight CLIP with the
# real CLIP tokenizer (`lumen make-tiny`), and classify the bundled image zero-shot.
# With a real checkpoint: ./build/lumen classify --model /path/to/clip-vit-base-patch32 \
#   --image your.jpg --labels "a cat,a dog,a car"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLUMEN_BUILD_TESTS=OFF >/dev/null
ninja -C build lumen_cli
# --force: the demo checkpoint in build/ is ours to rewrite on every run.
./build/lumen make-tiny --family clip --out build/tiny-clip --seed 0 --force
./build/lumen classify --model build/tiny-clip --image data/images/example.jpg \
  --labels "cat,dog,diagram,landscape"
