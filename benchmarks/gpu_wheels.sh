#!/usr/bin/env bash
# Wheels for the GPU machine (Python 3.12, x86_64, no downloads there), made here:
#   benchmarks/gpu_wheels.sh [--with-opencv] [DEST]       (default DEST: benchmarks/wheels)
# mmengine, mmdet and the pure-Python or small binary packages they import, the mmcv 2.1.0
# source (built there by gpu_check.sh), and setuptools<70 + wheel for that build. DEST is
# ignored by git; carry it with the device tool's `carry` (64 MiB in all), which is why
# opencv-python-headless (56 MB) and the matplotlib stack come only when asked for: run the
# check once without them and its `wheels` stage records which imports the machine lacks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRA=()
if [ "${1:-}" = "--with-opencv" ]; then
    EXTRA=(opencv-python-headless==4.8.1.78)
    shift
fi
DEST="${1:-$ROOT/benchmarks/wheels}"
mkdir -p "$DEST"
BIN=(--python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --no-deps -d "$DEST")
pip download -q "${BIN[@]}" mmengine==0.10.7 mmdet==3.3.0 addict yapf termcolor rich \
    markdown-it-py mdurl pygments platformdirs pycocotools terminaltables shapely pyyaml \
    packaging \
    'setuptools<70' wheel "${EXTRA[@]}"
if [ "${#EXTRA[@]}" -gt 0 ]; then
    pip download -q "${BIN[@]}" matplotlib pillow kiwisolver fonttools contourpy cycler \
        pyparsing python-dateutil six
fi
# the mmcv source; its setup.py imports torch, so the project venv's pip fetches it
"${PIP:-$ROOT/.venv/bin/pip}" download -q --no-deps --no-binary=:all: --no-build-isolation \
    -d "$DEST" mmcv==2.1.0
total=$(du -sm "$DEST" | cut -f1)
echo "$DEST: $(ls "$DEST" | wc -l) files, ${total} MiB (the device tool carries 64 MiB in all)"
[ "$total" -le 64 ] || echo "warning: over the 64 MiB carry limit" >&2
