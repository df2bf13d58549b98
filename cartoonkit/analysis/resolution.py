"""The resolution study: time per photo and fidelity to the input at each output resolution.

Outputs of different resolutions cannot be compared pixel for pixel, so each output and the
original photo (full size, as decoded) are resized to one common size with the package's
antialiased bilinear resize (:func:`~cartoonkit.analysis.quality.compare_at`) and compared there.
Two common sizes answer two questions: the smallest resolution of the study ("at the size every
output can show, how close to the photo is it?") and the largest ("viewed large, how close?").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import CartoonConfig
from ..timing import median_seconds
from .quality import compare_at


def resolution_study(cartoonizer, decoded, resolutions: Sequence[int], style_weight: float = 0.75,
                     compare_sizes: Sequence[int] | None = None, repeats: int = 3) -> tuple[list[dict], dict]:
    """Cartoonize ``decoded`` (a :class:`~cartoonkit.imageio.DecodedImage`) at each resolution (long side, px).

    One row per resolution: ``resolution``, ``ms`` (median of ``repeats`` runs of
    :meth:`~cartoonkit.Cartoonizer.process` after one warm-up: resize, network, blend; no file I/O),
    and for each common size ``s`` in ``compare_sizes`` (default: the smallest and the largest
    resolution) ``psnr@s`` (dB) and ``ssim@s`` against the input photo and ``psnr_vs_largest@s``
    against the output at the largest resolution. ``time_ratio`` and ``psnr_gain_db@s`` are relative
    to the first resolution. Also returns the outputs, ``{resolution: (H, W, 3) uint8}``.
    """
    resolutions = list(resolutions)
    sizes = list(compare_sizes) if compare_sizes else sorted({min(resolutions), max(resolutions)})
    photo = decoded.rgb.permute(1, 2, 0).numpy()
    outputs, rows = {}, []
    for resolution in resolutions:
        config, last = CartoonConfig(style_weight=style_weight, resolution=resolution), []

        def run(config=config, last=last):
            last[:] = [cartoonizer.process(decoded, config)]  # keep the output of the last timed run

        seconds = median_seconds(run, repeats, cartoonizer.device)
        outputs[resolution] = last[0].rgb.permute(1, 2, 0).cpu().numpy()
        rows.append({"resolution": resolution, "ms": seconds * 1e3})
    largest = outputs[max(resolutions)]
    for row in rows:
        out = outputs[row["resolution"]]
        row["time_ratio"] = row["ms"] / rows[0]["ms"]
        for size in sizes:
            scores = compare_at(out, photo, size)
            row[f"psnr@{size}"], row[f"ssim@{size}"] = scores["psnr"], scores["ssim"]
            row[f"psnr_vs_largest@{size}"] = compare_at(out, largest, size)["psnr"]
            row[f"psnr_gain_db@{size}"] = row[f"psnr@{size}"] - rows[0].get(f"psnr@{size}", np.nan)
    return rows, outputs
