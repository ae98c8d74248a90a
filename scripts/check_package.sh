#!/usr/bin/env bash
# Install check: `cmake --install` into a prefix, then the Debian package built by CPack is
# installed with dpkg -i, smoke-tested (clipserve --help; clipserve serve answering
# /health/ready on a tiny synthetic model) and removed again. Run by .ci/run after the tests.
#
#   bash scripts/check_package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
TMP=$(mktemp -d)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "check_package: cmake --install into a prefix"
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
"$TMP/prefix/bin/clipserve" --help >/dev/null
[ -f "$TMP/prefix/share/doc/clipserve/README.md" ]

echo "check_package: cpack -G DEB"
rm -f "$BUILD"/clipserve_*.deb
(cd "$BUILD" && cpack -G DEB >/dev/null)
DEB=$(ls "$BUILD"/clipserve_*.deb)
dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/^ */  depends: /'
$SUDO dpkg -i "$DEB" >/dev/null
BIN=/usr/bin/clipserve
[ "$(dpkg-query -W -f='${Status}' clipserve)" = "install ok installed" ]
"$BIN" --help >/dev/null
"$BIN" synth-model --config tests/data/engine/tiny_config.json --seed 0 --out "$TMP/tiny" >/dev/null
"$BIN" serve --model "$TMP/tiny" --port 0 --no-warmup 2>"$TMP/serve.log" &
SERVER=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$TMP/serve.log" | head -1)
  [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/serve.log"; echo "check_package: serve died" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null || {
  cat "$TMP/serve.log"
  echo "check_package: the installed server never got ready" >&2
  exit 1
}
kill -TERM "$SERVER"
wait "$SERVER"
SERVER=""
$SUDO dpkg -r clipserve >/dev/null
echo "check_package: OK ($(basename "$DEB") installs, serves /health/ready, removes)"
