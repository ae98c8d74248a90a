#!/usr/bin/env bash
# ThreadSanitizer run of the concurrency tests: collections (searches from many threads while a
# writer adds and deletes), the multi-model server over HTTP (requests racing idle unloads
# and reloads; engines on the hash test encoder) and the compute thread (core/compute_thread). Races inside third-party headers that are
# accepted are listed, with the reason, in scripts/tsan.supp. Tests that run a real model are
# left out: oneDNN's OpenMP regions synchronize through libgomp, which is not built for TSan,
# so every parallel region reads as a race (false positives). Not in .ci/run (a third full build of the library); run it
# after changing src/index/, src/server/model_set.* or src/core/compute_thread.*:   bash scripts/tsan.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-tsan}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLIPSERVE_TSAN=ON \
  -DCLIPSERVE_BENCH=OFF >/dev/null
cmake --build "$B" -j "$(nproc)" --target test_index_reliability test_server_models test_core
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
"$B/tests/test_index_reliability" --gtest_filter='CollectionConcurrency.*'
"$B/tests/test_server_models"
"$B/tests/test_core" --gtest_filter='ComputeThread.*'
echo "TSan: no data races reported"
