#!/usr/bin/env bash
# Embedding cosine of fast-mode preprocessing vs exact mode on a synthetic ViT-B-32, over
# every JPEG of the image set (fast mode only changes JPEGs >= 2x the target size).
# usage: bench/fast_mode_cosine.sh [BUILD_DIR] [IMAGE_DIR]
set -euo pipefail
BUILD=${1:-build}
IMAGES=${2:-../shared/fixtures/images}
CLI="$BUILD/clipserve"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/exact" "$T/fast"
"$CLI" synth-model --arch ViT-B-32 --seed 0 --out "$T/model" >/dev/null
mapfile -t FILES < <(ls "$IMAGES"/*.jpg "$IMAGES"/*.JPEG "$IMAGES"/*.jpeg 2>/dev/null)
"$CLI" preprocess --size 224 --out "$T/exact" "${FILES[@]}"
"$CLI" preprocess --fast --size 224 --out "$T/fast" "${FILES[@]}"
"$CLI" embed --model "$T/model" --out "$T/exact.npy" "$T"/exact/*.npy
"$CLI" embed --model "$T/model" --out "$T/fast.npy" "$T"/fast/*.npy
/usr/bin/python3 - "$T" <<'PY'
import sys, numpy as np
t = sys.argv[1]
a, b = np.load(t + "/exact.npy"), np.load(t + "/fast.npy")
c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"{len(c)} JPEGs: embedding cosine fast vs exact: min {c.min():.6f}, "
      f"median {np.median(c):.6f}, changed rows {(c < 1).sum()}")
PY
