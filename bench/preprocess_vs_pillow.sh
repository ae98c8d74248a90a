#!/usr/bin/env bash
# Decode + preprocess per image, single thread: clipserve (exact and fast modes) vs Pillow 9.4
# doing the same work (bench/pillow_preprocess.py), interleaved round by round in one run so
# both see the same machine load. Prints per-file medians (over rounds of per-round medians),
# the clipserve/Pillow ratio, and the whole-set total.
#   bench/preprocess_vs_pillow.sh [BUILD_DIR] [ROUNDS] [REPS] [SIZE] [FILE...]
# Default files: ../shared/fixtures/images/*. STAT=min_ms uses per-round minima instead.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}; ROUNDS=${2:-5}; REPS=${3:-10}; SIZE=${4:-224}
shift $(( $# < 4 ? $# : 4 ))
FILES=("$@")
[ ${#FILES[@]} -gt 0 ] || FILES=(../shared/fixtures/images/*)
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
  taskset -c 0 /usr/bin/python3 bench/pillow_preprocess.py "$SIZE" "$REPS" "${FILES[@]}" >> "$TMP/pillow.jsonl"
  taskset -c 0 "$BUILD/bench/bench_preprocess" --size "$SIZE" --reps "$REPS" --modes exact,fast \
    "${FILES[@]}" >> "$TMP/clipserve.jsonl"
done
/usr/bin/python3 - "$TMP" <<'PY'
import json, sys, os, statistics as st
d = sys.argv[1]
# Under load (shared machine) also look at the minimum: noise from other processes only adds.
key = os.environ.get("STAT", "median_ms")
pil, cs = {}, {}
for l in open(os.path.join(d, "pillow.jsonl")):
    j = json.loads(l); pil.setdefault(j["file"], []).append(j[key])
for l in open(os.path.join(d, "clipserve.jsonl")):
    j = json.loads(l)
    if key in j: cs.setdefault((j["file"], j["mode"]), []).append(j[key])
print("statistic:", key, "(per file: median over rounds)")
print(f"{'file':58s} {'pillow_ms':>9s} {'exact_ms':>9s} {'ratio':>6s} {'fast_ms':>8s} {'ratio':>6s}")
tot = [0.0, 0.0, 0.0]
for f in pil:
    if (f, "exact") not in cs: continue
    p = st.median(pil[f]); e = st.median(cs[(f, "exact")]); q = st.median(cs[(f, "fast")])
    tot[0] += p; tot[1] += e; tot[2] += q
    print(f"{os.path.basename(f):58s} {p:9.3f} {e:9.3f} {e/p:6.3f} {q:8.3f} {q/p:6.3f}")
print(f"{'TOTAL (' + str(len(pil)) + ' files)':58s} {tot[0]:9.3f} {tot[1]:9.3f} {tot[1]/tot[0]:6.3f} {tot[2]:8.3f} {tot[2]/tot[0]:6.3f}")
PY
