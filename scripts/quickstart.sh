#!/usr/bin/env bash
# The main job in one command: install dependencies, build, make a synthetic ViT-B-32 model
# (no pretrained weights are reachable offline; with network, pass a real name such as
# ViT-B-32/laion2b_s34b_b79k as $1), then embed and zero-shot classify the bundled images.
# Everything it writes lives under build/ (ignored by git) or /tmp: the tree stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-build/models/synthetic-vit-b-32}
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
if [ "$MODEL" = build/models/synthetic-vit-b-32 ] && [ ! -f "$MODEL/open_clip_model.safetensors" ]; then
  ./build/clipserve synth-model --arch ViT-B-32 --seed 0 --out "$MODEL"
fi
IMAGES=(tests/data/image/rgb_420.jpg tests/data/image/rgba.png tests/data/image/gray.jpg)
./build/clipserve embed --model "$MODEL" --out /tmp/clipserve-quickstart.npy "${IMAGES[@]}" \
  "text:a photo of a dog." "text:a photo of a cat."
echo "embeddings written to /tmp/clipserve-quickstart.npy"
./build/clipserve classify --model "$MODEL" --labels dog,cat,car,flower "${IMAGES[@]}"
echo "serve it: ./build/clipserve serve --model $MODEL --port 8080"
