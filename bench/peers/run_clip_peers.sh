#!/usr/bin/env bash
# Runs the CLIP image-encoder peers on one checkpoint and prints one JSON line per peer:
#   {"peer":"pytorch","images_per_s":..,"ms_per_image":..,"batch":..,"threads":..,...}
#   {"peer":"onnxruntime",...}
# A peer that cannot run prints {"peer":NAME,"error":"..."} instead, and the exit status is then 1.
#
# usage: run_clip_peers.sh MODEL_DIR BATCH THREADS [ITERS [WARMUP]]
#   MODEL_DIR  HF CLIP checkpoint (config.json + model.safetensors), e.g. from make_random_clip.py
#   ITERS      timed batches per peer (default 3), WARMUP untimed ones before them (default 1)
# environment:
#   LUMEN_PEERS        peers to run, default "pytorch onnxruntime"
#   LUMEN_PEER_PYTHON  python with torch + numpy, default /usr/bin/python3 (Debian's)
#   LUMEN_PEER_CACHE   where exported .onnx files go when MODEL_DIR's parent is not writable
#                      (default /tmp/lumen-peers/onnx)
#
# The ONNX export sits next to the checkpoint as MODEL_DIR.clip_vision.onnx and is redone when
# config.json or model.safetensors is newer. After each export ONNX Runtime's output on a seeded
# input is checked against PyTorch's (max |diff| <= 1e-4) before anything is timed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { echo "usage: $0 MODEL_DIR BATCH THREADS [ITERS [WARMUP]]" >&2; exit 2; }
[[ $# -ge 3 && $# -le 5 ]] || usage
model="$(cd "$1" 2>/dev/null && pwd)" || { echo "$0: no such directory: $1" >&2; exit 2; }
batch="$2" threads="$3" iters="${4:-3}" warmup="${5:-1}"
for v in "$batch" "$threads" "$iters"; do [[ "$v" =~ ^[1-9][0-9]*$ ]] || usage; done
[[ "$warmup" =~ ^[0-9]+$ ]] || usage
for f in config.json model.safetensors; do
  [[ -f "$model/$f" ]] || { echo "$0: $model has no $f" >&2; exit 2; }
done
py="${LUMEN_PEER_PYTHON:-/usr/bin/python3}"
peers="${LUMEN_PEERS:-pytorch onnxruntime}"

# Every peer gets the same thread budget, whatever library it ends up in.
export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

json_error() {  # peer, message -> {"peer":..,"error":..} with the message JSON-escaped
  "$py" -c 'import json,sys; print(json.dumps({"peer": sys.argv[1], "error": sys.argv[2]}))' "$1" "$2"
}

onnx_path() {
  local parent; parent="$(dirname "$model")"
  if [[ -w "$parent" ]]; then
    echo "$model.clip_vision.onnx"
  else
    local cache="${LUMEN_PEER_CACHE:-/tmp/lumen-peers/onnx}"
    mkdir -p "$cache"
    echo "$cache/$(echo "$model" | tr -c 'A-Za-z0-9._-\n' '_').clip_vision.onnx"
  fi
}

# Exports (when stale) and checks the ONNX graph; prints its path. Logs go to stderr.
prepare_onnx() {
  local onnx; onnx="$(onnx_path)"
  local stamp="$onnx.checked"
  if [[ ! -f "$onnx" || "$model/model.safetensors" -nt "$onnx" || "$model/config.json" -nt "$onnx" ]]; then
    rm -f "$stamp"
    echo "exporting $onnx" >&2
    "$py" "$here/clip_vision_torch.py" --model "$model" --export-onnx "$onnx" --batch 1 \
      >&2 || return 1
  fi
  if [[ ! -f "$stamp" || "$onnx" -nt "$stamp" ]]; then
    local ref; ref="$(mktemp -d /tmp/lumen-peers-check.XXXXXX)"
    "$py" "$here/clip_vision_torch.py" --model "$model" --dump-embeds "$ref/embeds.npy" \
      --batch 2 --seed 1 >&2 || { rm -rf "$ref"; return 1; }
    if node "$here/ort_clip.mjs" --onnx "$onnx" --check "$ref/embeds.npy" --threads "$threads" >&2; then
      touch "$stamp"
    else
      rm -rf "$ref"
      echo "ONNX Runtime output differs from PyTorch on $onnx" >&2
      return 1
    fi
    rm -rf "$ref"
  fi
  echo "$onnx"
}

status=0
for peer in $peers; do
  case "$peer" in
    pytorch)
      if ! "$py" "$here/clip_vision_torch.py" --model "$model" --batch "$batch" --threads "$threads" \
           --iters "$iters" --warmup "$warmup"; then
        json_error pytorch "clip_vision_torch.py failed (see stderr)"; status=1
      fi
      ;;
    onnxruntime)
      if [[ ! -d "$here/node_modules/onnxruntime-node" ]]; then
        json_error onnxruntime "onnxruntime-node missing: run 'ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install' in $here"
        status=1; continue
      fi
      if ! onnx="$(prepare_onnx)"; then
        json_error onnxruntime "ONNX export or its check against PyTorch failed (see stderr)"
        status=1; continue
      fi
      if ! node "$here/ort_clip.mjs" --model "$model" --onnx "$onnx" --batch "$batch" \
           --threads "$threads" --iters "$iters" --warmup "$warmup"; then
        json_error onnxruntime "ort_clip.mjs failed (see stderr)"; status=1
      fi
      ;;
    *)
      json_error "$peer" "unknown peer (known: pytorch onnxruntime)"; status=1
      ;;
  esac
done
exit "$status"
