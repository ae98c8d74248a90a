#!/usr/bin/env bash
# Installs every Debian package clipserve's build and tests need (`--bench`: also the
# benchmark peers). Safe to re-run. `--list [--bench]` prints the package names and installs
# nothing (scripts/check_setup.sh compares them with what the build really used).
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git ccache
  clang-14 libclang-rt-14-dev clang-format
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libdnnl-dev nlohmann-json3-dev
  # Debian's oneDNN is built with its OpenCL GPU runtime: dnnl-config.cmake requires these.
  opencl-headers ocl-icd-opencl-dev
  libicu-dev libutf8proc-dev zlib1g-dev libdeflate-dev
  libjpeg62-turbo-dev libpng-dev libwebp-dev libtiff-dev libgif-dev
  libcpp-httplib-dev libssl-dev libcurl4-openssl-dev
  python3 python3-numpy python3-pil wrk curl
  # The web page's browser test (tests/node): headless Chromium driven by playwright-core.
  chromium nodejs
  python3-dev pybind11-dev python3-pybind11 python3-pytest python3-setuptools python3-venv  # Python package (python/)
  libsqlite3-dev libhnswlib-dev sqlite3  # collections (src/index/)
)
# `setup.sh --bench` adds the peers of the benchmarks (bench/peer_torch.sh): PyTorch with
# OpenBLAS (with Debian's reference BLAS instead, PyTorch is ~15x slower).
# bench/peer_ort.sh (int8 vs ONNX Runtime): ONNX export and ORT's int8 rewrite.
BENCH_ORT=(python3-onnx)
LIST=0
for a in "$@"; do
  case "$a" in
  # python3-hnswlib python3-faiss: the collections benchmark's peers (bench/ann_bench.py).
  --bench) PKGS+=(python3-torch libopenblas0-pthread "${BENCH_ORT[@]}" python3-hnswlib python3-faiss) ;;
  --list) LIST=1 ;;
  *) echo "setup.sh: unknown option $a (use --bench, --list)" >&2; exit 2 ;;
  esac
done
if [ $LIST = 1 ]; then
  printf '%s\n' "${PKGS[@]}"
  exit 0
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm packages of the Node.js tests (tests/node: playwright-core, openai), exactly as
# tests/node/package-lock.json pins them; reinstalled when the lock file changes.
cd "$(dirname "$0")/.."
LOCK_SUM=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/node/node_modules/.clipserve-lock 2>/dev/null)" != "$LOCK_SUM" ]; then
  echo "setup: npm ci in tests/node"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
  echo "$LOCK_SUM" >tests/node/node_modules/.clipserve-lock
fi
