"""Int8 inference of the generator on x86 CPUs: post-training static quantization, calibrated once.

Why: a CPU without AMX multiplies int8 with AVX-512 VNNI at twice its bfloat16 rate, and the convolutions
are nearly all of the network's time; int8 is the only way such a CPU gets well past bfloat16.

How: torchao's PT2E flow with ``X86InductorQuantizer``. The float generator is exported
(``torch.export``) for one input shape, observers are inserted, the observers' statistics are loaded
from one calibration run, the graph is converted to quantize/dequantize pairs, and ``torch.compile`` with
inductor's ``freezing`` lowers each pair around a convolution to one oneDNN int8 convolution. Weights are
int8 per output channel, activations uint8 per tensor with static scales, so a photo's result never
depends on what else is in its batch. Everything between the convolutions (up-sampling, skip sums) runs
in bfloat16 where the CPU has it, and the guided-filter head stays in float32, as in every precision.

The export bakes the shape in (padding and slice sizes are Python integers), so each input shape gets
its own graph; the calibration statistics are shared, so a new shape costs an export and a compilation,
not a recalibration. The engine's shape buckets keep the number of shapes small.

Each shape is compiled ahead of time (AOTInductor, with freezing, the work between convolutions under
bfloat16 autocast where the CPU has it: the same kernels, and the same bytes, as ``torch.compile`` gives) into
a package kept in :mod:`cartoonkit.compile_cache`. A later process with the same model, shape, torch, torchao
and CPU loads it in milliseconds instead of calibrating (3 s) and compiling (10-30 s); calibration only runs
when a shape has to be built.

Calibration set: the colour photos shipped inside scikit-image (a portrait, a cup, a cat, a rocket), centre
crops at :data:`CALIBRATION_SIZE`. Deterministic, no download, and disjoint from the real photos that the
tests and the benchmark measure the int8 output on (PSNR against float32, the 40 dB bar).
"""

from __future__ import annotations

import copy
import logging
import time

import torch
from torch import nn

from .errors import ConfigError
from .network import CartoonNetwork
from .packaged import PackagedNetwork, memory_format

log = logging.getLogger(__name__)

CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
CALIBRATION_SIZE = 384
FLOAT_LAYERS = ("conv0", "conv8")
"""Layers left out of int8 (they run in ``compute_dtype``): the 3-to-32-channel input convolution and the
32-channel one at full resolution. Measured at 512 px on a Zen 4 CPU, oneDNN's int8 kernels were slower than
bfloat16 for both (12.5 vs 7.6 ms and 13.6 vs 11.3 ms), and keeping them raised the lowest PSNR against
float32 over the 11 photos in ``shared/images`` from 43.6 to 45.0 dB."""


POLYPHASE_LAYERS = ("conv9",)
"""Layers computed on the 2x2 polyphase grid (:mod:`cartoonkit.polyphase`) in int8: the 32-to-3-channel
output convolution, whose 3 output channels left 13 of oneDNN's 16 lanes idle. Bit-identical int8 sums;
measured at 512 px on one Zen 4 core, 24 ms -> 15 ms with the regrouping."""


def int8_generator(generator: nn.Module) -> nn.Module:
    """A float32 copy of ``generator`` laid out for int8: the :data:`POLYPHASE_LAYERS` on the phase grid."""
    from .polyphase import PolyphaseConv2d

    copied = copy.deepcopy(generator).float().eval().requires_grad_(False)
    for name in POLYPHASE_LAYERS:
        setattr(copied, name, PolyphaseConv2d(getattr(copied, name)).eval().requires_grad_(False))
    return copied


def calibration_inputs(size: int = CALIBRATION_SIZE) -> list[torch.Tensor]:
    """The calibration photos as network inputs: ``(1, 3, size, size)`` BGR in ``[-1, 1]``."""
    import cv2
    from skimage import data

    from .transforms import rgb_uint8_to_network

    inputs = []
    for name in CALIBRATION_PHOTOS:
        rgb = getattr(data, name)()
        height, width = rgb.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = cv2.resize(rgb[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
        inputs.append(rgb_uint8_to_network(torch.from_numpy(square).permute(2, 0, 1)[None].contiguous()))
    return inputs


def _import_torchao():
    """torchao's PT2E modules; importing torchao 0.18 logs a torch deprecation warning a user can do nothing about."""
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e.quantize_pt2e as pt2e
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    except ImportError as exc:
        raise ConfigError(f"precision='int8' needs torchao ({exc}); pip install 'torchao==0.18.0'") from exc
    finally:
        pytree_log.setLevel(level)
    return pt2e, x86


def _quantizer(float_layers: tuple[str, ...]):
    _, x86 = _import_torchao()

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    for name in float_layers:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def _prepare(generator: nn.Module, example: torch.Tensor, float_layers: tuple[str, ...]) -> torch.fx.GraphModule:
    """The generator exported at ``example``'s shape, with observers in front of every quantized tensor."""
    pt2e, _ = _import_torchao()
    exported = torch.export.export(copy.deepcopy(generator), (example,)).module()
    return pt2e.prepare_pt2e(exported, _quantizer(float_layers))


class _QuantizedGenerator(nn.Module):
    """The int8 generator of one shape, as it is compiled ahead of time.

    ``compute_dtype`` bfloat16: the work between the int8 convolutions runs under bfloat16 autocast, inside
    ``forward`` so that the ahead-of-time export keeps it. The float32 guided filter is its own package (see
    :class:`cartoonkit.packaged.FilterPackages`)."""

    def __init__(self, generator: torch.fx.GraphModule, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.generator = generator
        self.bf16 = compute_dtype == torch.bfloat16

    def forward(self, photo_bgr: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.generator(photo_bgr).float()


class Int8Network(PackagedNetwork):
    """``CartoonNetwork`` with an int8 generator: one compiled package per input shape, from the cache when
    there is one, else calibrated (once per process, on the first shape to build) and compiled into it.

    ``compute_dtype`` is what the work between the int8 convolutions runs in (``torch.bfloat16`` on CPUs
    with fast bfloat16, else ``torch.float32``). ``cache``: a :class:`~cartoonkit.compile_cache.CompiledCache`
    (default: the user's); ``calibration``: the calibration inputs (default :func:`calibration_inputs`).
    """

    kind = "int8"

    def __init__(self, network: CartoonNetwork, compute_dtype: torch.dtype = torch.float32,
                 calibration: list[torch.Tensor] | None = None, float_layers: tuple[str, ...] = FLOAT_LAYERS,
                 cache=None):
        from .compile_cache import environment_parts, weights_digest

        self.float_layers = float_layers
        self.generator = int8_generator(network.generator)
        self.compute_dtype = compute_dtype
        self._calibration = calibration
        self._observer_state: dict[str, torch.Tensor] | None = None
        super().__init__(network, {**environment_parts(), "network": "int8", "weights": weights_digest(network),
                                   "compute_dtype": str(compute_dtype), "float_layers": list(float_layers),
                                   "calibration": "custom" if calibration is not None else
                                   [list(CALIBRATION_PHOTOS), CALIBRATION_SIZE]}, cache)

    def _observers(self) -> dict[str, torch.Tensor]:
        if self._observer_state is None:
            started = time.perf_counter()
            inputs = self._calibration or calibration_inputs()
            self._observer_state = self._calibrate(inputs)
            log.info("int8: calibrated on %d photos in %.1f s", len(inputs), time.perf_counter() - started)
        return self._observer_state

    def _calibrate(self, inputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.inference_mode(False), torch.no_grad():
            prepared = _prepare(self.generator, torch.zeros_like(inputs[0]), self.float_layers)
            for x in inputs:
                prepared(x.clone())
            return {name: value.clone() for name, value in prepared.state_dict().items()}

    def _compile_package(self, x: torch.Tensor, destination: str) -> None:
        """Calibrated int8 graph for ``x``'s shape -> an AOTInductor package at ``destination``."""
        pt2e, _ = _import_torchao()
        with torch.inference_mode(False), torch.no_grad():
            example = torch.zeros(x.shape, dtype=torch.float32).contiguous(memory_format=memory_format(x))
            prepared = _prepare(self.generator, example, self.float_layers)
            prepared.load_state_dict(self._observers(), strict=True)
            quantized = pt2e.convert_pt2e(prepared)
            exported = torch.export.export(_QuantizedGenerator(quantized, self.compute_dtype), (example,))
            log.info("int8: compiling for shape %s (10-30 s, once per shape; kept in %s)", tuple(x.shape),
                     self.cache.folder)
            # Freezing is what lets inductor fold the weights and lower quantize/dequantize pairs to oneDNN
            # int8 convolutions.
            from torch._inductor import aoti_compile_and_package

            aoti_compile_and_package(exported, package_path=destination, inductor_configs={"freezing": True})
