#!/usr/bin/env bash
# clipserve vs PyTorch (Debian python3-torch 1.13, transformers 4.30's OWL-ViT ops re-implemented
# in bench/torch_owlvit_peer.py) on the same synthetic OWL-ViT weights, 768 px, interleaved
# rounds in one run; first checks that both compute the same logits and boxes. Then the
# Detector's first-request / steady / cached-image numbers.
# usage: bench/peer_owlvit.sh [BUILD_DIR] [ARCH] [ROUNDS] [THREADS] [IMAGE]
set -euo pipefail
BUILD=${1:-build}
ARCH=${2:-owlvit-base-patch32}
ROUNDS=${3:-2}
THREADS=${4:-2}
IMAGE=${5:-tests/data/owlvit/n01440764_tench.JPEG}
CLI="$BUILD/clipserve"
/usr/bin/python3 -c "import torch" 2>/dev/null || {
  echo "python3-torch is not installed: bash scripts/setup.sh --bench"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$CLI" synth-model --arch "$ARCH" --seed 0 --out "$T/m" 2>/dev/null
NAME=$(basename "$IMAGE")
"$CLI" preprocess --model "$T/m" --out "$T" "$IMAGE"
"$CLI" detect --model "$T/m" --queries "a photo of a cat,a photo of a dog" --threads "$THREADS" \
  --dump "$T" "$IMAGE" >/dev/null
printf '{"text":"a photo of a cat"}\n{"text":"a photo of a dog"}\n' |
  "$CLI" tokenize --context-length 16 | /usr/bin/python3 -c "
import sys, json, numpy as np
rows = [json.loads(l)['ids'] for l in sys.stdin]
a = np.zeros((len(rows), 16), np.int64)
for i, r in enumerate(rows): a[i, :len(r)] = r
np.save('$T/ids.npy', a)"
PEER=(/usr/bin/python3 bench/torch_owlvit_peer.py "$T/m" --pixels "$T/$NAME.npy" --ids "$T/ids.npy"
      --threads "$THREADS")
"${PEER[@]}" --batch 1 --iters 1 --check-dir "$T" --name "$NAME"
echo "# $(lscpu | grep 'Model name' | sed 's/ \+/ /g'), $(nproc) CPUs, threads $THREADS, $ARCH"
for r in $(seq "$ROUNDS"); do
  echo "# round $r"
  "$BUILD/bench/bench_detect" --model "$T/m" --image "$IMAGE" --precision fp32,bf16 \
    --batch 1,4 --threads "$THREADS" --iters 3 --cases backend
  "${PEER[@]}" --batch 1,4 --iters 3
done
echo "# detector: first request after ready, steady state, cached image"
"$BUILD/bench/bench_detect" --model "$T/m" --image "$IMAGE" --precision fp32,bf16 \
  --threads "$THREADS" --iters 5 --cases detector
