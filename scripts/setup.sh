#!/usr/bin/env bash
# Installs every Debian package clipserve's build and tests need (`--bench`: also the
# benchmark peers). Safe to re-run.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git ccache
  clang-14 libclang-rt-14-dev clang-format
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libdnnl-dev nlohmann-json3-dev
  libicu-dev libutf8proc-dev zlib1g-dev libdeflate-dev
  libjpeg62-turbo-dev libpng-dev libwebp-dev libtiff-dev libgif-dev
  libcpp-httplib-dev libssl-dev libcurl4-openssl-dev
  python3 python3-numpy python3-pil wrk curl
  libsqlite3-dev libhnswlib-dev sqlite3  # collections (src/index/)
)
# `setup.sh --bench` adds the peers of the benchmarks (bench/peer_torch.sh): PyTorch with
# OpenBLAS (with Debian's reference BLAS instead, PyTorch is ~15x slower).
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(python3-torch libopenblas0-pthread)
  PKGS+=(python3-hnswlib python3-faiss)  # collections benchmark peers (bench/ann_bench.py)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
