#!/usr/bin/env bash
# `clipserve eval` on fixture-sized datasets built from ../shared/fixtures/images: zero-shot
# on the ImageNet-named photos (one folder per class, plus a 3-image "flower" class) and
# retrieval on 8 photos with hand-written captions; every precision, with and without fast
# preprocessing. Synthetic weights know nothing about images: the accuracies are chance
# level; the point is the agreement of each setting with fp32 and the images/s.
# usage: bench/eval_fixtures.sh [BUILD_DIR] [ARCH] [EXTRA EVAL ARGS...]
set -euo pipefail
BUILD=${1:-build}
ARCH=${2:-ViT-B-32}
shift $(( $# < 2 ? $# : 2 ))
CLI="$BUILD/clipserve"
F=$(cd ../shared/fixtures/images && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$CLI" synth-model --arch "$ARCH" --seed 0 --out "$T/m" >/dev/null
Z="$T/zeroshot"
for f in n01440764_tench n01748264_Indian_cobra n01871265_tusker n02951585_can_opener \
         n03461385_grocery_store n03781244_monastery n03804744_nail n04501370_turnstile; do
  c=${f#*_}; c=${c//_/ }
  mkdir -p "$Z/$c" && cp "$F/$f.JPEG" "$Z/$c/"
done
mkdir -p "$Z/flower" && cp "$F"/flower_cmyk_ycck_1134x756.jpg "$F"/flower_gray_1134x756.jpg \
  "$F"/flower_q80_2268x1512.webp "$Z/flower/"
echo "## zeroshot ($ARCH, synthetic seed 0)"
"$CLI" eval zeroshot --model "$T/m" --dataset "$Z" --precision fp32,bf16,int8 --fast-preprocess \
  --no-progress "$@"
R="$T/captions.jsonl"
cat > "$R" <<JSONL
{"image": "$F/flickr_1000268201_693b08cb0e.jpg", "captions": ["a child in a pink dress climbing stairs", "a little girl at a wooden cabin"]}
{"image": "$F/flickr_1220401002_3f44b1f3f7.jpg", "captions": ["people on a street", "a crowd outdoors"]}
{"image": "$F/photo_640x425.jpg", "captions": ["a photograph"]}
{"image": "$F/opencv_baboon_512x512.jpg", "captions": ["a baboon face", "a colourful monkey"]}
{"image": "$F/skimage_coffee_600x400.png", "captions": ["a cup of coffee"]}
{"image": "$F/skimage_camera_512x512.png", "captions": ["a man with a camera on a tripod"]}
{"image": "$F/n01871265_tusker.JPEG", "captions": ["an elephant with tusks"]}
{"image": "$F/n03781244_monastery.JPEG", "captions": ["a monastery on a hill", "an old stone building"]}
JSONL
echo "## retrieval ($ARCH, synthetic seed 0)"
"$CLI" eval retrieval --model "$T/m" --dataset "$R" --precision fp32,bf16,int8 --fast-preprocess \
  --no-progress "$@"
