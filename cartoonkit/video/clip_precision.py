"""What ``--precision auto`` means for a clip on a CPU: int8 when the clip is long enough to pay for compiling it.

For a photo, ``auto`` on a CPU stays bfloat16 until ``cartoonkit warmup`` has compiled int8 (see
:func:`cartoonkit.options.precision_name`): int8 calibrates and compiles each new input shape first (about 25 s on
the 2-core development CPU, then cached on disk), which one photo never pays back. A clip is hundreds of frames of
one shape, so the same cost is paid once and the frames repay it: on that CPU at 1280x720 int8 saves about 0.3 s per
frame end to end (1.23 -> 1.90 fps, BENCHMARKS.md "Frames per second end to end"), so 25 s are back after about 80
frames. The saving grows with the pixels, so the rule counts frames times megapixels.

Only ``auto`` is changed, only on a CPU where int8 runs fast (:func:`cartoonkit.options.int8_available`), and only
for a section long enough; a precision asked for by name is kept. int8 keeps ``auto``'s bar (at least 44 dB PSNR
against float32 on real photos; 45-48 dB measured).
"""

from __future__ import annotations

from dataclasses import replace

from ..options import EngineOptions, int8_available, int8_prepared
from ..transforms import output_size

INT8_PAYS_BACK = 80.0
"""Frames times megapixels (of the network's input) from which a clip repays int8's compilation on a CPU:
about 25 s of compiling against about 0.33 s saved per frame and megapixel (measured at 1280x720, see above).
At 1280x720 that is 87 frames (3.5 s at 25 fps), at 1920x1080 39, at 512x288 545."""


def clip_engine_options(options: EngineOptions, device_type: str, frames: int | None, height: int,
                        width: int, long_side: int) -> tuple[EngineOptions, str | None]:
    """``options`` for a clip of ``frames`` frames of ``height x width`` run with the network's long side
    ``long_side`` on ``device_type``, and a note saying why when ``auto`` was made int8 (else ``None``)."""
    if options.precision != "auto" or device_type != "cpu" or frames is None or not int8_available():
        return options, None
    if int8_prepared():  # `cartoonkit warmup` was run: auto is int8 already
        return options, None
    network_height, network_width = output_size(height, width, long_side)
    work = frames * network_height * network_width / 1e6
    if work < INT8_PAYS_BACK:
        return options, None
    return replace(options, precision="int8"), (
        f"precision auto: int8 for this clip ({frames} frames of {network_width}x{network_height} repay compiling "
        "it, about 25 s once per size and then cached; --precision bfloat16 to keep the photo default)")
