#!/usr/bin/env bash
# The GPU checks of cartoonkit in one call of about 7 minutes (9 at most), for a machine with an NVIDIA GPU and a python3 that
# has torch (the `device` tool's H200 image: torch, torchvision, opencv, pillow, safetensors, onnxruntime, pytest are
# there; what is not travels in .gpu-assets/):
#
#   here:   make gpu-assets                     # .gpu-assets/: a copy of ../shared, the tflite and PyAV wheels (git-ignored)
#   there:  bash benchmarks/gpu-check.sh        # with .gpu-assets carried; results in $OUT (or bench-results/gpu/)
#   CPU:    GPU_CHECK_DEVICE=cpu bash benchmarks/gpu-check.sh   # the plumbing only (tests/test_gpu_check.py)
#
# It writes seven files: gpu.txt (the card, the driver, torch), gpu-tests.log (every test marked `gpu`), targets.log
# and targets.json (benchmarks/gpu_targets.py: the folder pipeline's targets of issue 22 in one table: a folder of
# 2,000 mixed-size JPEGs eager and --compile, the network alone on the same shapes, one warm photo, the first output
# of a cold run), video.log and video.json (benchmarks/gpu_video.py: issue 24's video table, fps end to end and ms
# per frame by stage at 1024x576, 1080p and 2160p, and the live view's fps) and summary.txt. Each step has its own
# time limit, so one that hangs cannot take the rest with it.
#
# GPU_CHECK_STEPS picks the steps (default "tests targets video"): a session with 15 minutes of device time, minutes
# of them the machine's start, runs only its issue's, e.g. GPU_CHECK_STEPS="tests video" (about 3 minutes) for
# issue 24, and keeps time for a rerun.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results/gpu}
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEPS=" ${GPU_CHECK_STEPS:-tests targets video} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
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

if [ "$DEVICE" = cpu ]; then
    $PY -c "from cartoonkit.hardware import cpu_model_name; print('cpu', cpu_model_name())" > "$OUT/gpu.txt" 2>&1
    targets=(--device cpu --quick --no-compile)
    video=(--device cpu --quick)
else
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    } > "$OUT/gpu.txt" 2>&1 || { summary "no usable NVIDIA GPU here: $(tail -1 "$OUT/gpu.txt")"; exit 2; }
    targets=(--device "$DEVICE")
    video=(--device "$DEVICE" --end 3)
fi
summary "machine: $(tr '\n' ' ' < "$OUT/gpu.txt")"
$PY -m cartoonkit models install whitebox > /dev/null && $PY -m cartoonkit models install yunet > /dev/null \
    || { summary "could not install the models (is .gpu-assets carried?)"; exit 2; }

# 1. Every GPU test (about 1-2 min; on the CPU they skip).
if want tests; then
timeout 150 $PY -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors \
    tests/test_engine.py tests/test_pipeline.py tests/test_batch.py tests/test_walkthrough.py tests/test_device_flow.py \
    tests/test_device_temporal.py tests/test_video_device.py tests/test_live.py > "$OUT/gpu-tests.log" 2>&1
summary "gpu tests (exit $?): $(tail -1 "$OUT/gpu-tests.log")"
fi

# 2. The targets in one table (about 3-4 min: 2,000 photos eager, then --compile within its own 120 s limit).
if want targets; then
timeout 270 $PY benchmarks/gpu_targets.py "${targets[@]}" --json "$OUT/targets.json" > "$OUT/targets.log" 2>&1
status=$?
summary "targets (exit $status):"
if [ $status -eq 0 ]; then sed -n '/^| target/,$p;/photos at/p' "$OUT/targets.log" | tee -a "$OUT/summary.txt"; else tail -5 "$OUT/targets.log" | tee -a "$OUT/summary.txt"; fi
fi

# 3. The video targets (issue 24) in one table (about a minute: four rows on 3 s of the clip, each after a warm-up,
#    then the live view's fps).
if want video; then
timeout 120 $PY benchmarks/gpu_video.py "${video[@]}" --json "$OUT/video.json" > "$OUT/video.log" 2>&1
status=$?
summary "video (exit $status):"
if [ $status -eq 0 ]; then sed -n '/dct_input.mp4, first/,$p' "$OUT/video.log" | tee -a "$OUT/summary.txt"; else tail -5 "$OUT/video.log" | tee -a "$OUT/summary.txt"; fi
fi
