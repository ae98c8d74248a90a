#!/usr/bin/env bash
# Fresh-machine check: every Debian package the build, tests and tools use is named in setup.sh.
#
#   bash scripts/check_setup.sh [BUILD_DIR] [--bench]
#
# Lists the packages scripts/setup.sh names, then finds what the configured build in BUILD_DIR
# (default build/) actually used: the files CMake found (CMakeCache.txt), the pkg-config modules,
# every header the compiler read (ninja's deps log), the shared libraries the binaries load,
# the command-line tools the scripts and tests run, and the Python modules the tests import.
# Each file is mapped to its Debian package with `dpkg -S`. A package counts as covered when
# setup.sh names it, when a named package depends on it (recursively), or when it is
# Essential/required (on every Debian system). Any other providing package fails the check,
# with the file that needed it. A file that no package provides fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
BENCH=""
for a in "$@"; do
  case "$a" in
  --bench) BENCH=--bench ;;
  *) BUILD=$a ;;
  esac
done
[ -f "$BUILD/CMakeCache.txt" ] || {
  echo "check_setup: $BUILD/CMakeCache.txt not found: configure and build first" >&2
  exit 2
}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1. What setup.sh names.
bash scripts/setup.sh --list $BENCH | sort -u >"$TMP/named"
echo "check_setup: setup.sh names $(wc -l <"$TMP/named") packages:"
tr '\n' ' ' <"$TMP/named" | fold -s -w 100 | sed 's/^/  /'
echo

# 2. Covered: the named packages, their recursive dependencies, and Essential/required ones.
mapfile -t NAMED <"$TMP/named"
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${NAMED[@]}" 2>/dev/null |
  grep -v '^ ' | grep -v '^<' | sed 's/:.*//' >"$TMP/covered"
dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' |
  awk '$2 == "yes" || $3 == "required" { print $1 }' >>"$TMP/covered"
cat "$TMP/named" >>"$TMP/covered"
sort -u -o "$TMP/covered" "$TMP/covered"

# 3. Files the build used, each with the reason it is needed ("file<TAB>why").
: >"$TMP/files"
add() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/files"; }
# 3a. Files and package config directories CMake found.
while IFS= read -r line; do
  key=${line%%:*}
  val=${line#*=}
  for v in ${val//;/ }; do
    [[ "$v" == /* && -e "$v" ]] || continue
    [[ "$v" == "$PWD"* ]] && continue
    if [ -d "$v" ]; then
      # A shared directory (/usr/include) says nothing; a package's own one (cmake/dnnl) does.
      owners=$(dpkg -S "$v" 2>/dev/null | sed 's/: .*//' | tr ',' '\n' | wc -l || true)
      [ "$owners" = 1 ] || continue
    fi
    add "$v" "CMake found $key"
  done
done < <(grep -E '^[A-Za-z_0-9]+:(FILEPATH|PATH)=/' "$BUILD/CMakeCache.txt")
# 3b. pkg-config modules.
grep -E '^__pkg_config_arguments_[A-Za-z_]+:INTERNAL=' "$BUILD/CMakeCache.txt" |
  sed 's/.*=//' | tr ';' '\n' | grep -vE '^(REQUIRED|QUIET|IMPORTED_TARGET|GLOBAL|NO_CMAKE_PATH|NO_CMAKE_ENVIRONMENT_PATH)$' |
  sort -u | while read -r m; do
  pc=$(pkg-config --path "$m" 2>/dev/null || true)
  if [ -n "$pc" ]; then add "$(readlink -f "$pc")" "pkg-config module $m"; fi
done
# 3c. Every header outside the tree that the compiler read.
if [ -f "$BUILD/build.ninja" ]; then
  ninja -C "$BUILD" -t deps 2>/dev/null | awk '/^    \// { print $1 }' | grep -v "^$PWD" |
    sort -u | while read -r h; do add "$(readlink -f "$h")" "header read by the build"; done
fi
# 3d. Shared libraries the built binaries load.
find "$BUILD" -maxdepth 3 -type f -executable \( -name 'clipserve' -o -name 'test_*' -o -name 'bench_*' \
  -o -name '*.so' \) 2>/dev/null | while read -r bin; do
  ldd "$bin" 2>/dev/null | awk '/=> \// { print $3 }'
done | sort -u | while read -r lib; do add "$(readlink -f "$lib")" "shared library loaded by the binaries"; done
# 3e. Tools the scripts, CI and tests run.
TOOLS=(cmake ninja pkg-config ccache git g++ gcc clang++-14 clang-format curl wrk /usr/bin/python3
  node npm chromium dpkg-shlibdeps)
for t in "${TOOLS[@]}"; do
  p=$(command -v "$t" || true)
  if [ -z "$p" ]; then
    echo "check_setup: FAIL: tool $t is not installed" >&2
    echo "missing-tool" >>"$TMP/fail"
    continue
  fi
  add "$(readlink -f "$p")" "tool $t"
done
# 3f. Python modules imported by the tests (and by the benchmarks with --bench).
PYDIRS=(tests python scripts)
[ -n "$BENCH" ] && PYDIRS+=(bench)
mapfile -t PYFILES < <(find "${PYDIRS[@]}" -name '*.py' -not -path '*/data/*' 2>/dev/null)
if [ ${#PYFILES[@]} -gt 0 ]; then
  /usr/bin/python3 - "${PYFILES[@]}" >"$TMP/pymods" <<'PY'
import ast, importlib.util, sys, os
local = {os.path.splitext(os.path.basename(f))[0] for f in sys.argv[1:]} | {"clipserve"}
mods = {}
for f in sys.argv[1:]:
    try:
        tree = ast.parse(open(f, encoding="utf-8").read(), f)
    except SyntaxError:
        continue
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for n in names:
            top = n.split(".")[0]
            if top in sys.stdlib_module_names or top in local:
                continue
            mods.setdefault(top, f)
for m, f in sorted(mods.items()):
    spec = importlib.util.find_spec(m)
    origin = spec.origin if spec and spec.origin else (list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else "")
    print(f"{m}\t{f}\t{origin}")
PY
  while IFS=$'\t' read -r m f origin; do
    if [ -z "$origin" ]; then
      echo "check_setup: FAIL: Python module $m (imported by $f) is not installed for /usr/bin/python3" >&2
      echo "missing-module" >>"$TMP/fail"
    else
      add "$origin" "Python module $m (imported by $f)"
    fi
  done <"$TMP/pymods"
fi

# 4. Map the files to packages (one dpkg -S call) and compare.
sort -u -t $'\t' -k1,1 "$TMP/files" >"$TMP/files.u"
cut -f1 "$TMP/files.u" >"$TMP/paths"
# dpkg knows a file by the path its package shipped: try the path as found, its merged-/usr
# twin (/lib <-> /usr/lib), then the file it resolves to (alternatives, .so -> .so.N links);
# the first that a package owns decides, so a -dev package's .so link counts as the -dev's.
twin() {
  case "$1" in
  /usr/lib/* | /usr/bin/* | /usr/sbin/*) echo "${1#/usr}" ;;
  /lib/* | /bin/* | /sbin/*) echo "/usr$1" ;;
  esac
}
while IFS= read -r p; do
  r=$(readlink -f "$p")
  printf '%s\t%s\t%s\t%s\n' "$p" "$(twin "$p")" "$r" "$(twin "$r")"
done <"$TMP/paths" >"$TMP/pairs"
tr '\t' '\n' <"$TMP/pairs" | grep . | sort -u | xargs -d '\n' dpkg -S 2>/dev/null |
  sed -E 's/^([^ ]*): (.*)$/\2\t\1/' >"$TMP/owners" || true
status=0
[ -f "$TMP/fail" ] && status=1
checked=0
while IFS=$'\t' read -r p c2 c3 c4; do
  why=$(awk -F'\t' -v p="$p" '$1 == p { print $2; exit }' "$TMP/files.u")
  pk=""
  for c in "$p" "$c2" "$c3" "$c4"; do
    [ -n "$c" ] || continue
    pk=$(awk -F'\t' -v c="$c" '$1 == c { print $2; exit }' "$TMP/owners")
    [ -n "$pk" ] && break
  done
  checked=$((checked + 1))
  if [ -z "$pk" ]; then
    echo "check_setup: FAIL: $p ($why) belongs to no Debian package" >&2
    status=1
    continue
  fi
  ok=0
  for one in ${pk//,/ }; do
    one=${one%%:*}
    grep -qxF "$one" "$TMP/covered" && ok=1
  done
  if [ $ok = 0 ]; then
    echo "check_setup: FAIL: $p ($why) comes from package ${pk//:amd64/}, which setup.sh does not name" >&2
    echo "${pk//:amd64/}" >>"$TMP/missing"
    status=1
  fi
done <"$TMP/pairs"
echo "check_setup: $checked files checked against $(wc -l <"$TMP/covered") covered packages"
if [ $status -ne 0 ]; then
  if [ -f "$TMP/missing" ]; then
    echo "check_setup: add to scripts/setup.sh: $(sort -u "$TMP/missing" | tr '\n' ' ')" >&2
  fi
  exit 1
fi
echo "check_setup: OK"
