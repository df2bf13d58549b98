"""Turn per-layer TensorFlow kernels into a checked ``CartoonNetwork`` state dict.

Every importer (TFLite flatbuffer, TensorFlow GraphDef) finds ``{scope: (kernel, bias)}`` in its
own file format and hands it here, so the checks, the refusal messages and the layout change
live in one place.
"""

from __future__ import annotations

import numpy as np

from ..errors import WeightImportError
from ..network import TF_LAYER_SCOPES, expected_shapes

# Where the output-channel, kernel and input-channel axes sit in a file's kernel tensor.
KERNEL_LAYOUT_TO_OIHW = {
    "OHWI": (0, 3, 1, 2),  # TFLite
    "HWIO": (3, 2, 0, 1),  # TensorFlow GraphDef / checkpoints
}


def build_state_dict(layers: dict[str, tuple[np.ndarray, np.ndarray]], kernel_layout: str,
                     source: str) -> dict[str, np.ndarray]:
    """Check that ``layers`` is exactly this network and return PyTorch-layout arrays.

    ``layers`` maps a TensorFlow scope below ``generator/`` (``"Conv_3"``, ``"block_1/conv2"``)
    to its kernel and bias. Anything missing, extra or mis-shaped raises
    :class:`WeightImportError` naming ``source``, what was expected and what was found.
    """
    expected_scopes = set(TF_LAYER_SCOPES)
    found_scopes = set(layers)
    if found_scopes != expected_scopes:
        missing = sorted(expected_scopes - found_scopes)
        extra = sorted(found_scopes - expected_scopes)
        raise WeightImportError(
            f"{source}: not the White-box/DCT-Net UNet generator: expected the 18 convolution layers "
            f"generator/Conv ... generator/Conv_9 and generator/block_0..3/conv1,2; "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}")

    shapes = expected_shapes()
    permutation = KERNEL_LAYOUT_TO_OIHW[kernel_layout]
    state: dict[str, np.ndarray] = {}
    for scope, (kernel, bias) in layers.items():
        prefix = TF_LAYER_SCOPES[scope]
        weight = np.ascontiguousarray(np.transpose(kernel, permutation))
        for name, array in ((f"{prefix}.weight", weight), (f"{prefix}.bias", bias)):
            if tuple(array.shape) != shapes[name]:
                raise WeightImportError(
                    f"{source}: layer generator/{scope} has shape {tuple(array.shape)} in PyTorch layout "
                    f"(file layout {kernel_layout}), expected {shapes[name]}")
            if not np.issubdtype(array.dtype, np.floating):
                raise WeightImportError(f"{source}: layer generator/{scope} holds {array.dtype} values, "
                                        "expected floating point weights")
            if not np.isfinite(array).all():
                raise WeightImportError(f"{source}: layer generator/{scope} contains NaN or infinite values")
            state[name] = array
    return state
