"""Does a photo's output depend on the batch it is processed in?

Each photo is cartoonized alone (:meth:`~cartoonkit.Cartoonizer.process`) and inside batches of
several sizes (:meth:`~cartoonkit.Cartoonizer.process_many` with ``max_batch = N``), and the
outputs are compared pixel for pixel. Only photos of one shape share an engine call, so the
photos are first made one size (:func:`square_photos`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..bench.images import square_photo
from ..config import CartoonConfig
from ..imageio import read_image
from ..imagetypes import to_decoded


def square_photos(paths: list[Path], size: int) -> list[np.ndarray]:
    """Real photos centre-cropped to squares and resized to ``size x size``: ``(size, size, 3)`` uint8 each."""
    return [square_photo(read_image(p).rgb, size).permute(1, 2, 0).contiguous().numpy() for p in paths]


def batch_difference(cartoonizer, images: list[np.ndarray], config: CartoonConfig,
                     batch_sizes=(1, 4, 8, 16)) -> list[dict]:
    """Compare every photo's output inside batches of each size with its output alone.

    ``images``: ``(H, W, 3)`` uint8 arrays of one shape; a batch of ``N`` cycles through them (so
    photos repeat when ``N > len(images)``) and runs as one engine call. One row per batch size:
    ``batch``, ``max_abs_diff`` and ``mean_abs_diff`` (grey levels over all pixels and channels of
    the batch) and ``changed_fraction`` (share of channel values that differ at all).
    """
    decoded = [to_decoded(im) for im in images]
    buckets = {cartoonizer.bucket_of(cartoonizer.prepare(d, config).photo) for d in decoded}
    if len(buckets) != 1:
        raise ValueError(f"photos must share one shape to share a batch, got buckets {sorted(buckets)}")
    alone = [cartoonizer.process(d, config).rgb.cpu() for d in decoded]
    rows = []
    for n in batch_sizes:
        members = [i % len(decoded) for i in range(n)]
        results = cartoonizer.process_many([decoded[i] for i in members], config, max_batch=n)
        diffs = torch.stack([(r.rgb.cpu().int() - alone[i].int()).abs() for r, i in zip(results, members,
                                                                                        strict=True)])
        rows.append({"batch": n, "max_abs_diff": int(diffs.max()), "mean_abs_diff": float(diffs.float().mean()),
                     "changed_fraction": float((diffs > 0).float().mean())})
    return rows
