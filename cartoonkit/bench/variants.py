"""The benchmark's named engine configurations (no torch here: the CLI reads the names for ``--help``)."""

from __future__ import annotations

from ..options import EngineOptions

# From the plain port (the first baseline) to the recommended one; each switch is its own variant, so the
# table shows what each optimisation buys.
VARIANTS: dict[str, EngineOptions] = {
    "eager-fp32": EngineOptions(precision="float32", channels_last=False),
    "channels_last-fp32": EngineOptions(precision="float32"),
    "channels_last-reduced": EngineOptions(precision="auto"),
    "compiled-reduced": EngineOptions(precision="auto", compile=True),
    "compiled-int8": EngineOptions(precision="int8"),  # x86 CPUs only; int8 always compiles
    "cuda-graphs-reduced": EngineOptions(precision="auto", cuda_graphs=True),  # CUDA only; compiles, replays graphs
    # Issue 23, step 1: the 3-channel edge convolutions widened to 8 for tensor cores (eager, then compiled on CUDA)
    "padded-reduced": EngineOptions(precision="auto", pad_edge_channels=True),
    "compiled-padded-reduced": EngineOptions(precision="auto", compile=True, pad_edge_channels=True),
    # Step 2: the element-wise gaps as hand-written Triton kernels (eager, CUDA only), alone and with step 1; and
    # inductor's max-autotune (minutes of compilation per shape: never in a default list)
    "fused-reduced": EngineOptions(precision="auto", fused_kernels=True),
    "fused-padded-reduced": EngineOptions(precision="auto", fused_kernels=True, pad_edge_channels=True),
    "compiled-max-autotune-reduced": EngineOptions(precision="auto", compile=True,
                                                   compile_mode="max-autotune-no-cudagraphs"),
    "cuda-graphs-max-autotune-reduced": EngineOptions(precision="auto", cuda_graphs=True, compile_mode="max-autotune"),
    # Step 4: the residual blocks' 128-channel convolutions in float8 E4M3 (CUDA, compute capability >= 8.9), the
    # rest float16; eager, then compiled (inductor around the _scaled_mm calls)
    "float8": EngineOptions(precision="float8"),
    "compiled-float8": EngineOptions(precision="float8", compile=True),
}
DEFAULT_VARIANTS = ("eager-fp32", "channels_last-fp32", "channels_last-reduced")

# The peers of `cartoonkit bench --peers [NAME ...]` (bare --peers: all of them): ONNX Runtime float32 and int8,
# OpenVINO fp32/bf16/int8, the TFLite interpreter, the naive PIL + eager pipeline end to end, TensorRT (CUDA only).
PEERS = ("onnxruntime", "openvino", "tflite", "naive", "tensorrt")
