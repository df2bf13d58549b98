#!/usr/bin/env bash
# The GPU checks of cartoonkit in one call of at most 8 minutes, for a machine with an NVIDIA GPU and a
# python3 that has torch (the `device` tool's H200 image: torch, torchvision, opencv, pillow, safetensors,
# onnxruntime, pytest are there; what is not travels in .gpu-assets/):
#
#   here:   make gpu-assets                     # .gpu-assets/: a copy of ../shared, the tflite wheel (git-ignored)
#   there:  bash benchmarks/gpu-check.sh        # with .gpu-assets carried; results in $OUT (or bench-results/gpu/)
#
# It writes: gpu.txt (the card, the driver, torch), gpu-tests.log (every test marked `gpu`), gpu-bench.json and
# gpu-bench.log (the network alone at 512/1024/2048, batch 1/8/16, fp32 / fp16 / compiled / CUDA graphs, with
# GFLOP per image for the FLOP fraction; twenty 1024-px portraits end to end), folder.json (sustained images per
# second of `cartoonkit batch` on a folder of 220 JPEGs with nvJPEG in and out) and summary.txt. Each step has
# its own time limit, so one that hangs cannot take the rest with it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu-assets ]; then
    export CARTOONKIT_SHARED="$PWD/.gpu-assets/shared" CARTOONKIT_MODELS="$PWD/.gpu-assets/models"
    if ls .gpu-assets/wheels/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --upgrade --no-index --no-deps --no-compile --target /tmp/cartoonkit-site .gpu-assets/wheels/*.whl \
            && export PYTHONPATH="$PYTHONPATH:/tmp/cartoonkit-site"
    fi
fi
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} > "$OUT/gpu.txt" 2>&1 || { summary "no usable NVIDIA GPU here: $(tail -1 "$OUT/gpu.txt")"; exit 2; }
summary "machine: $(tr '\n' ' ' < "$OUT/gpu.txt")"
$PY -m cartoonkit models install whitebox > /dev/null && $PY -m cartoonkit models install yunet > /dev/null \
    || { summary "could not install the models (is .gpu-assets carried?)"; exit 2; }

# 1. Every GPU test (about 1-2 min).
timeout 150 $PY -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors \
    tests/test_engine.py tests/test_pipeline.py tests/test_batch.py tests/test_walkthrough.py > "$OUT/gpu-tests.log" 2>&1
summary "gpu tests (exit $?): $(tail -1 "$OUT/gpu-tests.log")"

# 2. The network alone and twenty portraits end to end (about 3-4 min).
timeout 240 $PY -m cartoonkit bench --device cuda --resolutions 512 1024 2048 --batch-sizes 1 8 16 --count 20 \
    --variants eager-fp32 channels_last-reduced compiled-reduced cuda-graphs-reduced --repeats 5 \
    --json "$OUT/gpu-bench.json" > "$OUT/gpu-bench.log" 2>&1
summary "bench (exit $?): $OUT/gpu-bench.json"

# 3. Sustained images per second on a folder: 220 JPEGs (the shared photos, copied), nvJPEG in and out (about 1 min).
folder=$(mktemp -d)
for i in $(seq 1 20); do for f in "${CARTOONKIT_SHARED:-../shared}"/images/*; do
    cp "$f" "$folder/$i-$(basename "$f")"; done; done
timeout 120 $PY -m cartoonkit -q batch "$folder" -o "$folder/out" --device cuda --format jpg --compile \
    --report "$OUT/folder.json" > "$OUT/folder.log" 2>&1
summary "folder (exit $?): $(tail -2 "$OUT/folder.log" | head -1)"
rm -rf "$folder"
