#!/usr/bin/env bash
# clipserve vs PyTorch (Debian python3-torch) on the same synthetic ViT-B-32 image tower,
# fp32, interleaved rounds in one run; also checks that both compute the same features.
# usage: bench/peer_torch.sh [BUILD_DIR] [ROUNDS] [THREADS]
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-3}
THREADS=${3:-2}
CLI="$BUILD/clipserve"
/usr/bin/python3 -c "import torch" 2>/dev/null || {
  echo "python3-torch is not installed: bash scripts/setup.sh --bench"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$CLI" synth-model --arch ViT-B-32 --seed 0 --out "$T/m" >/dev/null
"$CLI" preprocess --size 224 --out "$T" tests/data/image/rgb_420.jpg
"$CLI" embed --raw --model "$T/m" --out "$T/ours.npy" "$T/rgb_420.jpg.npy"
/usr/bin/python3 bench/torch_peer.py "$T/m" --batch 1 --iters 1 --check "$T/ours.npy" \
  --input "$T/rgb_420.jpg.npy" --threads "$THREADS"
for r in $(seq "$ROUNDS"); do
  echo "# round $r"
  "$CLI" bench --model "$T/m" --tower image --batch 1,16 --precision fp32,bf16 \
    --threads "$THREADS" --iters 20 --json | grep '^{'
  /usr/bin/python3 bench/torch_peer.py "$T/m" --batch 1,16 --threads "$THREADS" --iters 20
done
