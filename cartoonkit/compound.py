"""Compound portrait mode: one pass over the whole photo for the background, one per face.

As in ModelScope's DCT-Net compound models, each face is aligned to a fixed template and cropped at
a fixed size, so the head network always sees faces at the scale it works best at, whatever their
size in the photo; the cartoon heads are pasted back over the background with a feathered mask.
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
class CompoundOutcome:
    """The composed image and what happened on the way (for the result's notes and timings)."""

    rgb: torch.Tensor                         # uint8 (3, H, W), CPU
    faces: int
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def compose_heads(photo: torch.Tensor, background: torch.Tensor, head_engine: Engine, detector: FaceDetector,
                  style_weight: float, face_size: int) -> CompoundOutcome:
    """Paste cartoon heads onto ``background``.

    ``photo`` and ``background`` are uint8 ``(3, H, W)`` RGB of the same size (the resized photo and
    its full-image cartoon). Faces are found on ``photo``; their aligned crops go through
    ``head_engine`` together in one batch.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    photo_hwc = np.ascontiguousarray(photo.permute(1, 2, 0).cpu().numpy())
    found = detector.detect(photo_hwc)
    timings["detect"] = time.perf_counter() - start
    notes = []
    if found.skipped_small or found.skipped_low_score:
        notes.append(f"faces skipped: {found.skipped_small} too small, {found.skipped_low_score} low score")
    if not found.faces:
        notes.append("no face found: plain (full) mode used")
        return CompoundOutcome(background.cpu(), 0, notes, timings)

    start = time.perf_counter()
    matrices = [alignment_matrix(face.landmarks, face_size) for face in found.faces]
    crops = np.stack([crop_face(photo_hwc, m, face_size) for m in matrices])
    timings["align"] = time.perf_counter() - start

    start = time.perf_counter()
    crops_t = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
    cartoons = head_engine(crops_t.to(head_engine.device)).clamp(0, 255)
    heads = blend_to_uint8(crops_t.to(cartoons.device), cartoons, style_weight).permute(0, 2, 3, 1).cpu().numpy()
    if head_engine.device.type == "cuda":
        torch.cuda.synchronize(head_engine.device)
    timings["head_network"] = time.perf_counter() - start

    start = time.perf_counter()
    mask = feather_mask(face_size)
    canvas = np.ascontiguousarray(background.permute(1, 2, 0).cpu().numpy())
    for head, matrix in zip(heads, matrices, strict=True):
        canvas = paste_back(canvas, head, matrix, mask)
    timings["paste"] = time.perf_counter() - start
    return CompoundOutcome(torch.from_numpy(canvas).permute(2, 0, 1).contiguous(), len(found.faces), notes, timings)
