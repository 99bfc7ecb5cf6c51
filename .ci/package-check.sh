#!/usr/bin/env bash
# Package check: the sdist holds what a build needs, a wheel built FROM that sdist is the abi3
# wheel with the native frontend and py.typed, and a base install of it (no extras) detects with
# BUNDLE_DIR on CLIP_WAV without torch, transformers or onnx.
#
#   bash .ci/package-check.sh BUNDLE_DIR CLIP_WAV
#
# Needs python3 (3.10+) with venv, a C compiler and a package index (PyPI) for build, the build
# requirements and the runtime dependencies. Everything it makes lives in a temp dir, removed at
# the end; the source tree is not written to (the sdist is built from a copy of it). Quiet but
# for errors (on stderr) and one summary line.
set -euo pipefail
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ $# -ne 2 ]; then
  echo "usage: bash .ci/package-check.sh BUNDLE_DIR CLIP_WAV" >&2
  exit 2
fi
[ -d "$1" ] || { echo "package-check: no bundle directory $1" >&2; exit 2; }
[ -f "$2" ] || { echo "package-check: no audio file $2" >&2; exit 2; }
bundle=$(cd "$1" && pwd)
clip="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "package-check: $*" >&2; exit 1; }

# The version's one source, the header, read by the parser setup.py uses.
version=$(python3 "$root/edgeser/_version.py") || fail "no version (above)"

# A copy of the source tree without what git ignores (venvs, build outputs, the egg-info a
# previous build or editable install left, whose stale SOURCES.txt setuptools would reread).
src="$work/src"
mkdir "$src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$root/$f" ]; then printf '%s\0' "$f"; fi; done |
    tar -C "$root" --null -T - -cf - | tar -C "$src" -xf -
else
  tar -C "$root" --exclude=./.venv --exclude='*.egg-info' --exclude=./build --exclude=./dist \
    -cf - . | tar -C "$src" -xf -
fi

python3 -m venv "$work/tools"
"$work/tools/bin/pip" install -q build
"$work/tools/bin/python" -m build --sdist --outdir "$work/dist" "$src" >"$work/sdist.log" 2>&1 ||
  { cat "$work/sdist.log" >&2; fail "building the sdist failed"; }
sdists=("$work"/dist/*.tar.gz)
[ ${#sdists[@]} -eq 1 ] && [ -f "${sdists[0]}" ] || fail "expected one sdist, found: ${sdists[*]}"
sdist=${sdists[0]}
[ "$(basename "$sdist")" = "edgeser-$version.tar.gz" ] ||
  fail "sdist $(basename "$sdist") is not edgeser-$version.tar.gz (the header's version)"
tar -tzf "$sdist" | sed 's|^[^/]*/||' | grep -v '/$' | sort >"$work/sdist-files"
for need in LICENSE README.md pyproject.toml setup.py MANIFEST.in PKG-INFO native/Makefile \
            native/build_ffi.py native/include/edgeser/frontend.h edgeser/_version.py \
            edgeser/py.typed; do
  grep -qxF "$need" "$work/sdist-files" || fail "the sdist lacks $need"
done
grep -q '^native/src/.*\.c$' "$work/sdist-files" || fail "the sdist has no native/src/*.c"
# Every C source and header of the tree (what build_ffi.py compiles) is in it.
(cd "$src" && find native/src native/include -type f | sort) >"$work/native-files"
missing=$(comm -23 "$work/native-files" "$work/sdist-files")
[ -z "$missing" ] || fail "the sdist lacks $(echo "$missing" | tr '\n' ' ')"
junk=$(grep -E '(^|/)(__pycache__|\.pytest_cache|\.venv|build|dist)/|\.(so|o|a|py[cod])$|^\.ci/' \
  "$work/sdist-files" || true)
[ -z "$junk" ] || fail "the sdist holds build outputs or caches: $(echo "$junk" | tr '\n' ' ')"

mkdir "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
"$work/tools/bin/python" -m build --wheel --outdir "$work/wheels" "$work/unpacked/edgeser-$version" \
  >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log" >&2; fail "building the wheel from the sdist failed"; }
wheels=("$work"/wheels/*.whl)
[ ${#wheels[@]} -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected one wheel, found: ${wheels[*]}"
wheel=${wheels[0]}
wheel_name=$(basename "$wheel")
case "$wheel_name" in
  "edgeser-$version-cp310-abi3-"*.whl) ;;
  *) fail "wheel $wheel_name is not edgeser-$version-cp310-abi3-PLATFORM.whl" ;;
esac
python3 - "$wheel" <<'PY' || fail "the wheel's contents are wrong"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"edgeser/py.typed", "edgeser/_native.abi3.so"}
licenses = {n for n in names if n.endswith(".dist-info/licenses/LICENSE")}
missing = sorted(need - names) + ([] if licenses else ["*.dist-info/licenses/LICENSE"])
strays = sorted(n for n in names if n.startswith(("tests/", "native/", "export/"))
                or (n.endswith(".so") and n != "edgeser/_native.abi3.so"))
if missing or strays:
    sys.exit(f"missing {missing}, unexpected {strays}")
PY

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
cd "$work"  # away from the source tree: only the installed package can be imported
EDGESER_REQUIRE_NATIVE=1 "$work/venv/bin/python" - "$version" "$bundle" "$clip" <<'PY' ||
import importlib.util, sys
import edgeser
import edgeser.frontend as fe
version, bundle, clip = sys.argv[1:]
assert edgeser.__version__ == version, (edgeser.__version__, version)
assert fe.BACKEND == "native", fe.BACKEND
native = sys.modules["edgeser._native"].__file__
assert native.endswith("/edgeser/_native.abi3.so"), native
from edgeser import Detector
Detector.load(bundle).detect_file(clip)
heavy = ("torch", "transformers", "onnx")
loaded = sorted(m for m in heavy if m in sys.modules)
assert not loaded, f"detection imported {loaded}"
installed = sorted(m for m in heavy if importlib.util.find_spec(m) is not None)
assert not installed, f"the base install pulled in {installed}"
PY
  fail "the installed wheel failed (above)"
[ "$("$work/venv/bin/edgeser" --version)" = "edgeser $version" ] || fail "edgeser --version is not $version"
"$work/venv/bin/edgeser" detect "$clip" --model "$bundle" -f json >"$work/detect.json" ||
  fail "edgeser detect failed"
windows=$(python3 - "$work/detect.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
windows = doc["files"][0]["windows"]
assert isinstance(windows, list) and windows, "no windows"
print(len(windows))
PY
) || fail "edgeser detect -f json gave no windows: $(head -c 400 "$work/detect.json")"

echo "package-check OK: $(basename "$sdist") ($(wc -l <"$work/sdist-files") files) -> $wheel_name" \
  "(py.typed, _native.abi3.so); base install: native frontend, detect gave $windows windows," \
  "no torch/transformers/onnx"
