"""``cartoonkit warmup``: compile the int8 network ahead of time for the shapes photos usually have.

Photos are padded to 64-pixel buckets, so at one resolution a handful of shapes covers the common aspect
ratios (square, 4:3, 3:2 and 16:9, portrait and landscape). Each is compiled once into the persistent cache
(:mod:`cartoonkit.compile_cache`); every later process that meets that shape loads it in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .options import bucket_shape
from .transforms import output_size

ASPECTS = ((1, 1), (4, 3), (3, 2), (16, 9))
"""Long side : short side of the photos people have (camera, phone, screen); each in both orientations."""


def common_shapes(resolution: int, bucket: int) -> list[tuple[int, int]]:
    """The bucket shapes ``(H, W)`` that photos of :data:`ASPECTS` run at, at ``resolution`` (long side)."""
    shapes = []
    for long, short in ASPECTS:
        for height, width in ((long * 1000, short * 1000), (short * 1000, long * 1000)):
            shape = bucket_shape(*output_size(height, width, resolution), bucket)
            if shape not in shapes:
                shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class Warmed:
    shape: tuple[int, int]
    seconds: float
    built: bool  # compiled now (False: it was in the cache already)


def warm_up(cartoonizer, resolutions: Sequence[int],
            report: Callable[[Warmed], None] | None = None) -> list[Warmed]:
    """Run the engine of ``cartoonizer`` (an int8 one) once on every :func:`common_shapes` shape."""
    engine = cartoonizer.engine
    int8 = getattr(engine, "_forward", None)
    done = []
    for resolution in resolutions:
        for height, width in common_shapes(resolution, engine.bucket):
            before = len(getattr(int8, "built", ()))
            start = time.perf_counter()
            engine(torch.zeros(1, 3, height, width, dtype=torch.uint8))
            warmed = Warmed((height, width), time.perf_counter() - start, len(getattr(int8, "built", ())) > before)
            done.append(warmed)
            if report is not None:
                report(warmed)
    return done
