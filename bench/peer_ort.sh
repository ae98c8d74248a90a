#!/usr/bin/env bash
# clipserve int8 / bf16 / fp32 vs ONNX Runtime fp32 / dynamic int8 on the same synthetic
# weights, interleaved rounds in one run, plus each engine's embedding cosine vs clipserve fp32
# on the same two images. ORT graphs: bench/onnx_export_clip.py (python3-onnx, no PyTorch),
# int8 by ../shared/peers/onnxruntime/quantize_int8.py; ort_bench from the same folder
# (build.sh installs onnxruntime-node from npm).
# usage: bench/peer_ort.sh [BUILD_DIR] [ROUNDS] [THREADS] [ARCH...]   (default ViT-B-32)
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-3}
THREADS=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
ARCHS=("${@:-ViT-B-32}")
[ ${#ARCHS[@]} -eq 0 ] && ARCHS=(ViT-B-32)
CLI="$BUILD/clipserve"
PEER=${ORT_PEER_DIR:-../shared/peers/onnxruntime}
ORT=${ORT_BUILD_DIR:-$BUILD/ort-peer}
/usr/bin/python3 -c "import onnx, numpy" 2>/dev/null || {
  echo "python3-onnx is not installed: bash scripts/setup.sh --bench"; exit 1; }
[ -x "$ORT/ort_bench" ] || bash "$PEER/build.sh" "$ORT"
T=${ORT_WORK_DIR:-$(mktemp -d)}
mkdir -p "$T"
"$CLI" preprocess --size 224 --out "$T" tests/data/image/rgb_420.jpg tests/data/image/gray.jpg >/dev/null
for arch in "${ARCHS[@]}"; do
  M="$T/$arch"
  if [ ! -f "$M/text.onnx" ]; then
    "$CLI" synth-model --arch "$arch" --seed 0 --out "$M" >/dev/null
    /usr/bin/python3 bench/onnx_export_clip.py "$M" "$M"
    for t in image text; do
      /usr/bin/python3 "$PEER/quantize_int8.py" "$M/$t.onnx" "$M/$t.int8.onnx" >/dev/null
    done
  fi
  # The check inputs (ort_bench's ORT_BENCH_CHECK layout): two images, clipserve fp32 raw features.
  for p in fp32 bf16 int8; do
    "$CLI" embed --raw --model "$M" --precision "$p" --out "$M/emb_$p.npy" \
      "$T/rgb_420.jpg.npy" "$T/gray.jpg.npy" 2>/dev/null
  done
  /usr/bin/python3 - "$T" "$M" <<'PY'
import sys, numpy as np
t, m = sys.argv[1], sys.argv[2]
x = np.stack([np.load(f"{t}/rgb_420.jpg.npy"), np.load(f"{t}/gray.jpg.npy")]).astype("<f4")
x.tofile(f"{m}/image_2x3x224x224.f32")
ref = np.load(f"{m}/emb_fp32.npy")
ref.astype("<f4").tofile(f"{m}/image_emb_2x{ref.shape[1]}.f32")
cos = lambda a, b: (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
for p in ("bf16", "int8"):
    c = cos(np.load(f"{m}/emb_{p}.npy"), ref)
    print(f"COSINE clipserve {p} vs clipserve fp32: " + " ".join(f"{v:.7f}" for v in c))
PY
  for v in "" .int8; do
    echo "COSINE ORT${v:-.fp32} vs clipserve fp32:"
    ORT_BENCH_CHECK="$M" "$ORT/ort_bench" "$M/image$v.onnx" image 1 "$THREADS" 1 2>/dev/null | grep CHECK
  done
done
for r in $(seq "$ROUNDS"); do
  echo "# round $r"
  for arch in "${ARCHS[@]}"; do
    M="$T/$arch"
    B="1,16"; [ "$arch" = ViT-L-14 ] && B=1
    "$CLI" bench --model "$M" --tower image --batch "$B" --precision fp32,bf16,int8 \
      --threads "$THREADS" --iters 10 --json | grep '^{'
    "$CLI" bench --model "$M" --tower text --tokens 77 --batch 1 --precision fp32,bf16,int8 \
      --threads "$THREADS" --iters 10 --json | grep '^{'
    for v in "" .int8; do
      for b in ${B//,/ }; do
        echo -n "$arch ort${v:-.fp32} "; "$ORT/ort_bench" "$M/image$v.onnx" image "$b" "$THREADS" 10 2>/dev/null | grep RESULT
      done
      echo -n "$arch ort${v:-.fp32} "; "$ORT/ort_bench" "$M/text$v.onnx" text 1 "$THREADS" 10 2>/dev/null | grep RESULT
    done
  done
done
