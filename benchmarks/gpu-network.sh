#!/usr/bin/env bash
# Issue 23's network variants on a GPU in one call of about 6 minutes (with .gpu-assets carried, as gpu-check.sh):
#
#   bash benchmarks/gpu-network.sh              # results in $OUT (or bench-results/gpu-network/)
#
# The network alone at 1024 px, batch 1 and 16: float16 channels-last eager (the default), the same with the 7x7
# edge convolutions widened to 8 channels (--pad-edge-channels, step 1), with the element-wise gaps as Triton
# kernels (--fused-kernels, step 2; alone and with step 1), each of the first two compiled, and CUDA graphs, and the
# residual blocks' convolutions in float8 E4M3 (--precision float8, step 4, eager: seconds; its compiled variant
# compiled-float8 is left out to stay within the limit: `--variants compiled-reduced compiled-float8` alone); PSNR
# against float32 in every row (>= 44 dB for the default is the bar). Each model row has its achieved TFLOP/s and its
# share of the peak of its precision, measured in the same run (the "measured peak" line: float16/bfloat16/float32
# matmul and copy bandwidth; cartoonkit/bench/peak.py). Where torch_tensorrt is installed, a second table (its own
# run and limit) puts the TensorRT peer beside the default; elsewhere one line says how to install it.
#
#   GPU_NETWORK_AUTOTUNE=1 bash benchmarks/gpu-network.sh   # instead: inductor's max-autotune, its own call
#
# times --compile-mode max-autotune-no-cudagraphs against --compile, and max-autotune (with CUDA graphs) against
# --cuda-graphs, batch 16 only, the network alone: each compiles for minutes (timeout_s about 600).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results/gpu-network}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu-assets ]; then
    export CARTOONKIT_SHARED="$PWD/.gpu-assets/shared" CARTOONKIT_MODELS="$PWD/.gpu-assets/models"
fi
$PY -m cartoonkit models install whitebox > /dev/null || { echo "could not install the model"; exit 2; }
if [ "${GPU_NETWORK_AUTOTUNE:-0}" = 1 ]; then
    timeout 560 $PY -m cartoonkit bench --device "${GPU_CHECK_DEVICE:-cuda}" --resolutions 1024 --batch-sizes 16 \
        --model-only --variants compiled-reduced compiled-max-autotune-reduced cuda-graphs-reduced \
        cuda-graphs-max-autotune-reduced --repeats 5 --json "$OUT/network-autotune.json" 2>&1 \
        | tee "$OUT/network-autotune.log" | grep -E "^\||^machine|^measured peak"
    exit "${PIPESTATUS[0]}"
fi
timeout 360 $PY -m cartoonkit bench --device "${GPU_CHECK_DEVICE:-cuda}" --resolutions 1024 --batch-sizes 1 16 \
    --variants channels_last-reduced padded-reduced fused-reduced fused-padded-reduced compiled-reduced \
    compiled-padded-reduced cuda-graphs-reduced float8 \
    --model-only --repeats 5 --json "$OUT/network.json" 2>&1 | tee "$OUT/network.log" | grep -E "^\||^machine|^measured peak"
if $PY -c "import torch_tensorrt" 2>/dev/null; then
    timeout 240 $PY -m cartoonkit bench --device "${GPU_CHECK_DEVICE:-cuda}" --resolutions 1024 --batch-sizes 1 16 \
        --model-only --variants channels_last-reduced --peers tensorrt --repeats 5 --json "$OUT/tensorrt.json" 2>&1 \
        | tee "$OUT/tensorrt.log" | grep -E "^\||^machine|^measured peak|^skipping"
else
    echo "skipping the TensorRT peer: torch_tensorrt is not installed here; pip install 'cartoonkit[tensorrt]'"
fi
