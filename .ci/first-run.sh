#!/usr/bin/env bash
# The README's first command path, as a new user meets it on a machine without espeak-ng: a
# fresh venv with only the `export` extra, a generated checkpoint directory, `edgeser export`
# and the first-use `edgeser detect CLIP --model CKPT_DIR --yes`. No traceback anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -e ".[export]"
venv_python="$work/venv/bin/python"
if "$venv_python" -c "import scipy" 2>/dev/null; then
  echo "note: scipy came in with the export extra's dependencies"
else
  echo "the export venv has no scipy"
fi

# A PATH without espeak-ng: every other tool of the system stays reachable.
mkdir "$work/bin"
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
  [ -d "$dir" ] || continue
  for tool in "$dir"/*; do
    name=$(basename "$tool")
    case "$name" in espeak*) continue ;; esac
    [ -e "$work/bin/$name" ] || ln -s "$tool" "$work/bin/$name"
  done
done
export PATH="$work/venv/bin:$work/bin"
if command -v espeak-ng >/dev/null; then echo "espeak-ng is still on PATH" >&2; exit 1; fi
export EDGESER_HOME="$work/home"

# A tiny checkpoint in the audeering layout and a clip (made in the export venv itself).
"$venv_python" - "$work" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
import numpy as np, soundfile as sf
import checkpoints
work = Path(sys.argv[1])
checkpoints.audeering_trained_like(work / "ckpt")
t = np.arange(5 * 44100) / 44100
sf.write(work / "clip.wav", 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2, 44100)
PY

check() {  # exit 0 and no traceback, else show what the user saw
  local name=$1; shift
  if ! "$@" >"$work/out" 2>"$work/err" || grep -q Traceback "$work/err"; then
    echo "$name failed:" >&2; cat "$work/out" "$work/err" >&2; exit 1
  fi
}
check "edgeser export" edgeser export --model "$work/ckpt" --out "$work/bundle" --eval-windows 8
grep -q "formant" "$work/bundle/manifest.json"
check "edgeser detect (first use of a checkpoint)" \
  edgeser detect "$work/clip.wav" --model "$work/ckpt" --yes --format json
"$venv_python" -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['files'][0]['windows']) == 3, d" "$work/out"
grep -q "exporting $work/ckpt" "$work/err"
check "edgeser detect (bundle exported on first use)" edgeser detect "$work/clip.wav" --model "$work/ckpt"
check "edgeser verify" edgeser verify "$work/bundle"
echo "first run OK: export and first-use detect in an export-only venv without espeak-ng"
