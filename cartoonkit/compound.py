"""Compound portrait mode: one pass over the whole photo for the background, one per face.

As in ModelScope's DCT-Net compound models, each face is aligned to a fixed template and cropped at
a fixed size, so the head network always sees faces at the scale it works best at, whatever their
size in the photo; the cartoon heads are pasted back over the background with a feathered mask.

Three steps, so that the head crops of many photos can share engine calls:
:func:`find_heads` (detect and align, per photo), :func:`cartoonize_heads` (all crops, batched),
:func:`paste_heads` (per photo). OpenCV detects, warps and pastes on the host, so photos come in and go out
as numpy ``(H, W, 3)`` arrays; :meth:`~cartoonkit.pipeline.Cartoonizer.process_many` makes that one round
trip from the engine's device, in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .engine import Engine
from .faces import FaceDetector, alignment_matrix, crop_face, feather_mask, paste_back
from .transforms import blend_to_uint8


@dataclass
class Heads:
    """The aligned faces of one photo: crops ``(N, S, S, 3)`` uint8 RGB and their ``(N, 2, 3)`` matrices."""

    crops: np.ndarray
    matrices: list[np.ndarray]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def find_heads(photo_hwc: np.ndarray, detector: FaceDetector, face_size: int) -> Heads:
    """Detect the faces of a uint8 ``(H, W, 3)`` photo and crop each, aligned, at ``face_size``."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    found = detector.detect(photo_hwc)
    timings["detect"] = time.perf_counter() - start
    notes = []
    if found.skipped_small or found.skipped_low_score:
        notes.append(f"faces skipped: {found.skipped_small} too small, {found.skipped_low_score} low score")
    if not found.faces:
        notes.append("no face found: plain (full) mode used")
        return Heads(np.zeros((0, face_size, face_size, 3), np.uint8), [], notes, timings)
    start = time.perf_counter()
    matrices = [alignment_matrix(face.landmarks, face_size) for face in found.faces]
    crops = np.stack([crop_face(photo_hwc, m, face_size) for m in matrices])
    timings["align"] = time.perf_counter() - start
    notes.append(f"compound mode: {len(matrices)} face(s)")
    return Heads(crops, matrices, notes, timings)


def cartoonize_heads(crops: np.ndarray, engine: Engine, style_weight: float, max_batch: int = 8) -> np.ndarray:
    """Cartoon heads for ``(N, S, S, 3)`` uint8 crops (from any number of photos), ``max_batch`` per call."""
    out = []
    for start in range(0, len(crops), max_batch):
        chunk = torch.from_numpy(crops[start:start + max_batch]).permute(0, 3, 1, 2).to(engine.device)
        cartoons = engine(chunk).clamp(0, 255)
        out.append(blend_to_uint8(chunk, cartoons, style_weight).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else crops


def paste_heads(canvas: np.ndarray, heads: np.ndarray, matrices: list[np.ndarray], face_size: int) -> np.ndarray:
    """Paste cartoon ``heads`` over a uint8 ``(H, W, 3)`` background; returns a new array."""
    mask = feather_mask(face_size)
    for head, matrix in zip(heads, matrices, strict=True):
        canvas = paste_back(canvas, head, matrix, mask)
    return canvas


def compose_many(photos: list[np.ndarray], backgrounds: list[np.ndarray], engine: Engine,
                 detector: FaceDetector, style_weight: float, face_size: int,
                 max_batch: int = 8) -> list[tuple[np.ndarray | None, Heads]]:
    """The whole second stage for several photos (uint8 ``(H, W, 3)`` arrays): their head crops go through
    ``engine`` together.

    Returns, per photo, the composed image (``None`` where no face was found: the background stands) and
    its :class:`Heads` (notes and timings; the shared head-network time is split evenly over the faces).
    """
    heads = [find_heads(photo, detector, face_size) for photo in photos]
    counts = [len(h.matrices) for h in heads]
    start = time.perf_counter()
    all_crops = np.concatenate([h.crops for h in heads]) if sum(counts) else np.zeros((0,), np.uint8)
    cartoons = cartoonize_heads(all_crops, engine, style_weight, max_batch) if sum(counts) else all_crops
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    network_seconds = time.perf_counter() - start
    results, offset = [], 0
    for background, h, n in zip(backgrounds, heads, counts, strict=True):
        if n:
            h.timings["head_network"] = network_seconds * n / sum(counts)
            start = time.perf_counter()
            composed = paste_heads(background, cartoons[offset:offset + n], h.matrices, face_size)
            h.timings["paste"] = time.perf_counter() - start
        else:
            composed = None
        offset += n
        results.append((composed, h))
    return results
