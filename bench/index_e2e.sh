#!/usr/bin/env bash
# Collections end to end on a synthetic ViT-B-32 (real compute, synthetic weights), one run:
# the Engine's own batch-16 image encode rate, ingest of real image files through
# `clipserve index add` and through HTTP (POST /indexes/x/documents, batches of 16 base64
# images), and text search over HTTP (encode + search + fetch metadata) p50/p99 vs the
# text tower's batch-1 encode time.
# usage: bench/index_e2e.sh [BUILD_DIR] [IMAGES] [PRECISION] [SEARCHES]
set -euo pipefail
# Any failing step stops the run with its line, command and the server's log: no silent exit.
trap 'rc=$?; echo "index_e2e.sh: FAILED (exit $rc) at line $LINENO: $BASH_COMMAND" >&2;
      [ -f "${T:-/nonexistent}/serve.log" ] && { echo "--- serve.log (last 30 lines)" >&2; tail -30 "$T/serve.log" >&2; }' ERR
BUILD=${1:-build}
N=${2:-160}
PREC=${3:-fp32}
SEARCHES=${4:-200}
CLI="$BUILD/clipserve"
T=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$T"' EXIT
SERVER=""
"$CLI" synth-model --arch ViT-B-32 --seed 0 --out "$T/m" >/dev/null
# The fixture images, repeated (each copy differs by its file name only: same decode cost).
mkdir -p "$T/img"
src=(tests/data/image/rgb_420.jpg tests/data/engine/photo_640x425.jpg tests/data/image/gray.jpg)
for i in $(seq 1 "$N"); do cp "${src[$((i % 3))]}" "$T/img/$i.jpg"; done
echo "# engine: image tower, batch 16 ($PREC)"
IMG_JSON=$("$CLI" bench --model "$T/m" --tower image --batch 16 --precision "$PREC" --iters 5 --json | grep '^{')
echo "$IMG_JSON"
echo "# engine: text tower, batch 1 ($PREC)"
TXT_JSON=$("$CLI" bench --model "$T/m" --tower text --batch 1 --precision "$PREC" --iters 20 --json | grep '^{')
echo "$TXT_JSON"
echo "# clipserve index add ($N files)"
t0=$(date +%s.%N)
"$CLI" index add --collection "$T/coll" --model "$T/m" --precision "$PREC" --no-progress "$T/img" >"$T/add.log" 2>&1 ||
  { cat "$T/add.log" >&2; false; }
ADD_S=$(/usr/bin/python3 -c "print($(date +%s.%N) - $t0)")
tail -1 "$T/add.log"
"$CLI" serve --model "$T/m" --precision "$PREC" --port 18477 --collections "$T/cols" 2>"$T/serve.log" &
SERVER=$!
ready=0
for _ in $(seq 600); do
  curl -sf http://127.0.0.1:18477/health/ready >/dev/null && { ready=1; break; }
  kill -0 "$SERVER" 2>/dev/null || { echo "index_e2e.sh: the server exited" >&2; false; }
  sleep 0.5
done
[ "$ready" = 1 ] || { echo "index_e2e.sh: the server was not ready after 300 s" >&2; false; }
/usr/bin/python3 - "$T/img" "$N" "$SEARCHES" "$IMG_JSON" "$TXT_JSON" "$ADD_S" <<'EOF'
import base64, json, os, statistics, sys, time, urllib.request
d, n, searches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
img, txt, add_s = json.loads(sys.argv[4]), json.loads(sys.argv[5]), float(sys.argv[6])
B = "http://127.0.0.1:18477"
def post(path, body):
    req = urllib.request.Request(B + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())
post("/indexes/x", {})
files = sorted(os.listdir(d), key=lambda f: int(f.split(".")[0]))
docs = [{"_id": f, "image": base64.b64encode(open(os.path.join(d, f), "rb").read()).decode(),
         "n": i, "text": f"photo number {i}"} for i, f in enumerate(files)]
t = time.perf_counter()
for s in range(0, len(docs), 16):
    r = post("/indexes/x/documents", {"documents": docs[s:s + 16]})
    assert not r["errors"], r
dt = time.perf_counter() - t
print(f"# HTTP ingest: {len(docs)} images in {dt:.1f} s = {len(docs) / dt:.1f} images/s")
lat, enc, srch = [], [], []
for i in range(searches):
    t = time.perf_counter()
    r = post("/indexes/x/search", {"q": f"a photo of a dog number {i}", "limit": 10})
    lat.append((time.perf_counter() - t) * 1000)
    enc.append(r["timings"]["encode_ms"]); srch.append(r["timings"]["search_ms"])
    assert len(r["hits"]) == 10, r
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"# HTTP text search ({searches} sequential): p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms; "
      f"server-side encode p50 {statistics.median(enc):.2f} ms, search+fetch p50 {statistics.median(srch):.3f} ms")
enc_rate = img["items_per_s"]
add_rate = n / add_s  # wall time of the whole `index add` process, model load included
print(f"# summary: engine batch-16 encode {enc_rate:.2f} images/s; index add {add_rate:.2f} "
      f"({add_rate / enc_rate:.2f}x, process wall time incl. model load); HTTP ingest "
      f"{len(docs) / dt:.2f} ({len(docs) / dt / enc_rate:.2f}x); text search p50 {p(0.5):.2f} ms "
      f"vs server-side text encode p50 {statistics.median(enc):.2f} ms + 2 ms "
      f"({'met' if p(0.5) <= statistics.median(enc) + 2 else 'NOT met'}); engine bench "
      f"text batch-1 median {txt['median_ms']:.2f} ms")
EOF
