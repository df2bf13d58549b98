"""Benchmark peers: the other ways this network is run, with one small interface.

Every runner has a ``name``, the ``layout`` of its input (``"NCHW"`` or ``"NHWC"``) and
``run(x: np.ndarray) -> np.ndarray``, which takes float32 BGR in ``[-1, 1]`` and returns the
network output in the same layout, BGR in ``~[-1, 1]``. Only the model runs inside ``run``:
converting the photo to that layout is the caller's job, so rows of a benchmark compare the
engines, not their preprocessing.

* :class:`NaivePipeline`: PyTorch as a typical demo script deploys it (float32 eager, contiguous
  NCHW, batch 1) with PIL decoding and encoding around it (:meth:`NaivePipeline.process_file`).
* :class:`OnnxRuntimeRunner`: ONNX Runtime on the model :func:`cartoonkit.export.export_onnx` wrote.
* :class:`TFLiteRunner`: the TFLite interpreter on the shipped ``.tflite`` file (fixed 1x224x224x3),
  the mobile reference.

``onnxruntime`` and ``ai_edge_litert`` are imported when a runner is created; when missing, a
:class:`~cartoonkit.export.MissingDependencyError` names the ``bench`` extra that installs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from .export import float32_cpu_copy, require
from .network import SIZE_MULTIPLE, CartoonNetwork
from .transforms import output_size

__all__ = ["NAIVE_CROP_MULTIPLE", "ModelRunner", "NaivePipeline", "OnnxRuntimeRunner", "TFLiteRunner"]

NAIVE_CROP_MULTIPLE = 8
"""White-box Cartoonization's ``resize_crop`` crops height and width down to multiples of 8."""


@runtime_checkable
class ModelRunner(Protocol):
    """What every peer offers: a name, an input layout and ``run``."""

    name: str
    layout: str

    def run(self, x: np.ndarray) -> np.ndarray: ...


def _check_nchw(x: np.ndarray) -> np.ndarray:
    """float32 contiguous ``(N, 3, H, W)`` with ``H``, ``W`` multiples of 4, else ``ValueError``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) array, got shape {x.shape}")
    if x.shape[2] % SIZE_MULTIPLE or x.shape[3] % SIZE_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {SIZE_MULTIPLE}, got {x.shape[2]}x{x.shape[3]}")
    return x


class NaivePipeline:
    """The pipeline as commonly deployed: what a demo script around the PyTorch port does.

    :meth:`process_file`, step by step, with nothing cached between calls but the network:

    1. ``PIL.Image.open(src).convert("RGB")``; EXIF orientation is *not* applied (demo scripts
       do not), which :class:`~cartoonkit.Cartoonizer` does.
    2. Resize with PIL so the long side is ``resolution``, aspect ratio kept (rounded as
       :func:`cartoonkit.transforms.output_size`), with PIL's default filter for ``resize``
       (bicubic; cartoonkit uses antialiased bilinear).
    3. Crop height and width *down* to multiples of 8 from the top-left, like White-box
       Cartoonization's ``resize_crop`` (``image[:h//8*8, :w//8*8]``), so the output can be up
       to 7 pixels smaller than ``resolution`` in each axis. The original also shrinks the short
       side to 720 first; here the long side is the benchmark's ``resolution`` instead, the
       setting every peer shares.
    4. RGB -> BGR, ``x / 127.5 - 1``, ``torch.from_numpy(...).permute(2, 0, 1)[None].contiguous()``
       (contiguous NCHW, no channels-last), moved to ``device``.
    5. :class:`CartoonNetwork` in float32, eager, batch 1, under ``torch.no_grad()``.
    6. ``(y + 1) * 127.5``, ``np.clip(0, 255).astype(np.uint8)`` (truncation, as the original),
       BGR -> RGB, ``PIL.Image.fromarray(...).save(dst)`` with PIL's defaults for the extension.

    The output is the full-strength cartoon (style weight 1), not cartoonkit's default blend.
    """

    name = "naive-pytorch-eager-fp32"
    layout = "NCHW"

    def __init__(self, network: CartoonNetwork, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.network = float32_cpu_copy(network).to(self.device)

    @classmethod
    def from_model(cls, model: str = "whitebox", device: str | torch.device = "cpu", *,
                   models_dir: str | os.PathLike | None = None) -> NaivePipeline:
        """Load an installed (or installable) model by name, as :func:`cartoonkit.weights.load_network`."""
        from .weights import load_network

        network, _ = load_network(model, models_dir=Path(models_dir) if models_dir else None)
        return cls(network, device)

    @staticmethod
    def load_photo(src: str | os.PathLike, resolution: int) -> np.ndarray:
        """Steps 1-3: decode, resize (long side ``resolution``), crop to multiples of 8; ``(H, W, 3)`` RGB uint8."""
        image = Image.open(src).convert("RGB")
        width, height = image.size
        new_h, new_w = output_size(height, width, resolution)
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        h, w = new_h // NAIVE_CROP_MULTIPLE * NAIVE_CROP_MULTIPLE, new_w // NAIVE_CROP_MULTIPLE * NAIVE_CROP_MULTIPLE
        if h == 0 or w == 0:
            raise ValueError(f"{src}: {new_w}x{new_h} after resizing, too small to crop to multiples of 8")
        return np.asarray(image)[:h, :w]

    def to_network(self, rgb: np.ndarray) -> torch.Tensor:
        """Step 4: ``(H, W, 3)`` RGB uint8 -> ``(1, 3, H, W)`` float32 BGR in ``[-1, 1]`` on the device."""
        bgr = rgb[:, :, ::-1].astype(np.float32) / 127.5 - 1
        return torch.from_numpy(bgr).permute(2, 0, 1)[None].contiguous().to(self.device)

    def model_only(self, photo_bgr: torch.Tensor) -> torch.Tensor:
        """Step 5: the network alone on a ``(N, 3, H, W)`` float32 tensor already on the device."""
        with torch.no_grad():
            return self.network(photo_bgr)

    @staticmethod
    def to_uint8_rgb(cartoon_bgr: torch.Tensor) -> np.ndarray:
        """Step 6 without the save: network output ``(1, 3, H, W)`` -> ``(H, W, 3)`` RGB uint8."""
        out = (cartoon_bgr[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5
        return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8)[:, :, ::-1])

    def cartoonize(self, src: str | os.PathLike, resolution: int) -> np.ndarray:
        """Steps 1-6 without the save: the ``(H, W, 3)`` RGB uint8 cartoon."""
        return self.to_uint8_rgb(self.model_only(self.to_network(self.load_photo(src, resolution))))

    def process_file(self, src: str | os.PathLike, dst: str | os.PathLike, resolution: int) -> tuple[int, int]:
        """Steps 1-6: read ``src``, write the cartoon to ``dst`` (format from its extension); ``(H, W)`` written."""
        rgb = self.cartoonize(src, resolution)
        Image.fromarray(rgb).save(dst)
        return rgb.shape[0], rgb.shape[1]

    def run(self, x: np.ndarray) -> np.ndarray:
        """:class:`ModelRunner` form of :meth:`model_only`: ``(N, 3, H, W)`` float32 numpy in and out."""
        x = _check_nchw(x)
        return self.model_only(torch.from_numpy(x).to(self.device)).cpu().numpy()


class OnnxRuntimeRunner:
    """ONNX Runtime on an exported model (see :func:`cartoonkit.export.export_onnx`).

    ``providers=None``: ``CUDAExecutionProvider`` first when this onnxruntime build has it (the
    ``onnxruntime-gpu`` package; the plain ``onnxruntime`` wheel is CPU-only), then the CPU
    provider. All graph optimisations are on (``ORT_ENABLE_ALL``, which on the CPU includes the
    NCHWc layout transformation for the convolutions) and ``intra_op_num_threads`` is
    ``torch.get_num_threads()``, so it uses the same cores as the PyTorch rows.

    ``run`` takes and returns numpy arrays on the host, so with the CUDA provider each call also
    copies the input to the GPU and the output back, as a numpy-based deployment does.
    """

    layout = "NCHW"

    def __init__(self, onnx_path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None):
        ort = require("onnxruntime", "The ONNX Runtime benchmark peer")
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise ValueError(f"ONNX Runtime providers {missing} are not available here; available: {available}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.path = Path(onnx_path)
        self.session = ort.InferenceSession(os.fspath(onnx_path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name
        provider = self.providers[0].removesuffix("ExecutionProvider").lower()
        self.name = f"onnxruntime-{provider}-fp32"

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(N, 3, H, W)`` float32 BGR in ``[-1, 1]`` -> the network output, same shape."""
        return self.session.run(None, {self.input_name: _check_nchw(x)})[0]


class TFLiteRunner:
    """The TFLite interpreter (``ai_edge_litert``) on the shipped ``.tflite`` file, on the CPU.

    The file has a fixed ``1x224x224x3`` NHWC float32 input (BGR in ``[-1, 1]``, like the PyTorch
    network) and runs float16 weights dequantised to float32 (XNNPACK delegate by default);
    ``num_threads`` is ``torch.get_num_threads()``.
    """

    name = "tflite-cpu"
    layout = "NHWC"

    def __init__(self, tflite_path: str | os.PathLike, threads: int | None = None):
        litert = require("ai_edge_litert.interpreter", "The TFLite benchmark peer")
        self.path = Path(tflite_path)
        self.interpreter = litert.Interpreter(model_path=os.fspath(tflite_path),
                                              num_threads=threads or torch.get_num_threads())
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self._input_index = inp["index"]
        self._output_index = self.interpreter.get_output_details()[0]["index"]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in inp["shape"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """``(1, 224, 224, 3)`` float32 BGR in ``[-1, 1]`` -> the cartoon, same shape; any other shape raises."""
        x = np.asarray(x)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"the TFLite model takes exactly shape {self.input_shape} (NHWC), got {tuple(x.shape)}; "
                             "resize the photo to that size first")
        self.interpreter.set_tensor(self._input_index, np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output_index)

