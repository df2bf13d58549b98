"""Faces: YuNet detection, 5-point similarity alignment, feathered head paste-back.

The pieces of the compound ("faces") mode, as pure functions plus one small detector class.
Every image here is a **numpy** ``uint8`` array ``(H, W, 3)`` in **RGB** order (height, width,
channel), never a tensor: OpenCV does the warps, and the caller converts a ``(3, H, W)`` tensor
with ``t.permute(1, 2, 0).cpu().numpy()`` and back with ``torch.from_numpy(a).permute(2, 0, 1)``.

The flow for one photo (the YuNet file comes from the model catalogue,
:func:`cartoonkit.weights.detector_path`)::

    detector = FaceDetector()
    result = detector.detect(rgb)                      # DetectionResult(faces, skipped_small, ...)
    mask = feather_mask(512)
    for face in result.faces:
        M = alignment_matrix(face.landmarks, 512)      # 2x3, photo -> crop
        crop = crop_face(rgb, M, 512)                  # (512, 512, 3) head crop, upright
        ...cartoonize crop (crops of a whole batch can go through the network together)...
        canvas = paste_back(canvas, cartoon_crop, M, mask)

Decisions worth knowing:

* **Detection size.** YuNet runs on a copy whose long side is at most ``detect_size`` (640 by
  default; small photos are not upscaled), resized with ``INTER_AREA``; boxes and landmarks are
  mapped back to the original pixels. 640 finds faces down to ~10 px at detection scale, i.e.
  about ``10 * long_side / 640`` px in the photo.
* **Thresholds.** A face is kept when its score is ``>= score_threshold`` (0.6) and the short side
  of its box is ``>= min_face`` (24) *original* pixels: smaller heads give crops too blurry to
  be worth the compound mode. YuNet itself runs with a floor of ``min(0.3, score_threshold)``
  so that detections between the floor and the threshold can be counted as
  ``skipped_low_score`` (anything YuNet scores below the floor is not a face and not counted).
* **Landmarks** are YuNet's order: right eye, left eye, nose tip, right mouth corner, left mouth
  corner, where "right" is the *subject's* right, i.e. the point on the image's left for a
  frontal face (the same order as the ArcFace template).
* **Template.** The standard ArcFace 112x112 5-point template is made for tight face crops
  (eyes-to-mouth distance ~36% of the crop). For a head crop it is shrunk by ``face_scale``
  (0.5 by default: eyes-to-mouth ~18% of the crop, inter-ocular ~16%) around the landmarks'
  centroid, and that centroid (roughly the nose tip) is placed at ``(0.5, 0.57)`` of the crop:
  a little below the centre, because the head extends further above the eyes (forehead, hair)
  than below the mouth (chin). With the defaults the eyes sit at ~0.48 and the mouth at ~0.66
  of the crop height, the top of a typical head with hair at ~0.2 and the chin at ~0.77, so
  the whole head is inside the fully opaque part of the mask.
* **Mask.** Generated in code: a superellipse ("rounded square", exponent 4) that is 1 in the
  centre and falls off with a raised cosine to exactly 0 at the crop border, over the outer
  ``margin`` (0.3) of the half-size. The smooth fall-off spreads the change over ~75 px of a
  512 crop, so no seam shows even where the cartoon differs strongly from the photo.
* **Borders.** Crops use ``BORDER_REPLICATE`` so faces near (or partly outside) the photo edge
  still give a full crop; paste-back never writes outside the canvas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import ConfigError, InvalidImageError, ModelError

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "DetectionResult",
    "Face",
    "FaceDetector",
    "alignment_matrix",
    "crop_face",
    "feather_mask",
    "head_template",
    "paste_back",
    "umeyama",
]


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")


@dataclass
class Face:
    """One detected face, in original-photo pixels (floats; may extend past the photo edge).

    ``box``: ``(x, y, w, h)`` top-left corner and size; ``score``: YuNet confidence in [0, 1];
    ``landmarks``: float ``(5, 2)`` array of ``(x, y)``: right eye, left eye, nose tip, right
    mouth corner, left mouth corner (subject's right/left, i.e. image left/right for a frontal face).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def size(self) -> float:
        """Short side of the box in pixels."""
        return float(min(self.box[2], self.box[3]))


@dataclass
class DetectionResult:
    """Faces kept (highest score first) and how many candidates were skipped, and why."""

    faces: list[Face] = field(default_factory=list)
    skipped_small: int = 0
    skipped_low_score: int = 0

    def __len__(self) -> int:
        return len(self.faces)

    def __bool__(self) -> bool:
        return bool(self.faces)


class FaceDetector:
    """YuNet through ``cv2.FaceDetectorYN``; one instance per thread (OpenCV's object is not thread-safe).

    ``score_threshold``: keep faces scoring at least this (0..1); ``min_face``: keep faces whose
    box short side is at least this many original pixels; ``detect_size``: the long side of the
    copy YuNet sees (the photo is only ever shrunk); ``model_path``: the ``.onnx``, by default
    the catalogue's checked copy (:func:`cartoonkit.weights.detector_path`, fetched on first use).
    """

    def __init__(self, score_threshold: float = 0.6, min_face: int = 24, detect_size: int = 640, *,
                 nms_threshold: float = 0.3, model_path: str | os.PathLike | None = None):
        if not 0.0 < score_threshold <= 1.0:
            raise ConfigError(f"score_threshold={score_threshold!r}: must be in (0, 1]")
        if not 0 <= min_face <= 100_000:
            raise ConfigError(f"min_face={min_face!r}: must be between 0 and 100000 pixels")
        if not 32 <= detect_size <= 8192:
            raise ConfigError(f"detect_size={detect_size!r}: must be between 32 and 8192 pixels")
        self.score_threshold = float(score_threshold)
        self.min_face = float(min_face)
        self.detect_size = int(detect_size)
        self.floor = min(0.3, self.score_threshold)
        if model_path is None:
            from .weights.registry import detector_path  # the catalogue: fetched and sha256-checked

            model_path = detector_path("yunet")
        self.model_path = Path(model_path)
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320),
                                                  score_threshold=self.floor, nms_threshold=nms_threshold,
                                                  top_k=5000)
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: OpenCV cannot load the YuNet face detector: {exc}") from exc

    def detect(self, rgb: np.ndarray) -> DetectionResult:
        """Faces in a numpy ``uint8`` ``(H, W, 3)`` RGB photo, in its own pixel coordinates."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
            raise InvalidImageError(f"detect: expected a uint8 (H, W, 3) RGB array, got "
                                    f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
        h, w = rgb.shape[:2]
        scale = min(1.0, self.detect_size / max(h, w))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        sh, sw = bgr.shape[:2]
        # Scale per axis: rounding the small size makes them differ by a fraction of a pixel.
        sx, sy = w / sw, h / sh
        self._net.setInputSize((sw, sh))
        _, raw = self._net.detect(bgr)
        result = DetectionResult()
        if raw is None:
            return result
        for row in raw:
            score = float(row[14])
            box = (float(row[0] * sx), float(row[1] * sy), float(row[2] * sx), float(row[3] * sy))
            landmarks = row[4:14].reshape(5, 2).astype(np.float64) * (sx, sy)
            if score < self.score_threshold:
                result.skipped_low_score += 1
            elif min(box[2], box[3]) < self.min_face:
                result.skipped_small += 1
            else:
                result.faces.append(Face(box=box, score=score, landmarks=landmarks))
        result.faces.sort(key=lambda f: f.score, reverse=True)
        return result


# --------------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------------

ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

HEAD_CENTRE = (0.5, 0.57)


def head_template(crop_size: int = 512, face_scale: float = 0.5) -> np.ndarray:
    """The 5 reference points ``(5, 2)`` float64 in a ``crop_size`` square head crop.

    The ArcFace 112 template, shrunk by ``face_scale`` around its centroid and moved so the
    centroid sits at :data:`HEAD_CENTRE` (fractions of the crop): see the module docstring.
    """
    if not 0.05 <= face_scale <= 1.5:
        raise ConfigError(f"face_scale={face_scale!r}: must be between 0.05 and 1.5")
    unit = (ARCFACE_TEMPLATE_112 - ARCFACE_TEMPLATE_112.mean(axis=0)) / 112.0
    return (unit * face_scale + np.asarray(HEAD_CENTRE)) * crop_size


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection).

    ``src``, ``dst``: float ``(N, 2)`` point sets, N >= 2. Returns the 2x3 float64 matrix ``M``
    minimising ``sum |M @ [src, 1] - dst|^2`` (Umeyama 1991).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"umeyama: expected two (N, 2) arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = (src_c ** 2).sum() / len(src)
    if var_src < 1e-12:
        raise ValueError("umeyama: the source points all coincide")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / var_src)
    translation = mu_dst - scale * rotation @ mu_src
    return np.hstack([scale * rotation, translation[:, None]])


def alignment_matrix(landmarks: np.ndarray, crop_size: int = 512, face_scale: float = 0.5) -> np.ndarray:
    """2x3 float64 matrix mapping photo pixels to the upright ``crop_size`` head crop.

    ``landmarks``: float ``(5, 2)`` in YuNet's order (see :class:`Face`).
    """
    return umeyama(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), head_template(crop_size, face_scale))


def crop_face(rgb: np.ndarray, matrix: np.ndarray, crop_size: int = 512) -> np.ndarray:
    """The head crop: numpy ``uint8`` ``(crop_size, crop_size, C)`` from a numpy ``(H, W, C)`` photo.

    Bilinear; pixels outside the photo repeat its edge (``BORDER_REPLICATE``), so faces at the
    border still give a full crop.
    """
    return cv2.warpAffine(rgb, np.asarray(matrix, dtype=np.float64), (crop_size, crop_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def feather_mask(crop_size: int = 512, margin: float = 0.3, power: float = 4.0) -> np.ndarray:
    """Blend weights, float32 ``(crop_size, crop_size)``: 1 in the centre, exactly 0 on the border.

    The level sets are superellipses ``|u|^p + |v|^p = r^p`` (``power`` 2: a disc, 4: a rounded
    square); the weight is 1 for ``r <= 1 - margin`` and falls with a raised cosine to 0 at
    ``r = 1``, which touches the middle of each border row/column (corners are 0 too).
    """
    if not 0.0 < margin <= 1.0:
        raise ConfigError(f"margin={margin!r}: must be in (0, 1]")
    if crop_size < 4:
        raise ConfigError(f"crop_size={crop_size!r}: must be at least 4")
    half = (crop_size - 1) / 2.0
    u = (np.arange(crop_size, dtype=np.float64) - half) / half      # -1 .. 1, border pixels at +-1
    r = (np.abs(u)[None, :] ** power + np.abs(u)[:, None] ** power) ** (1.0 / power)
    t = np.clip((r - (1.0 - margin)) / margin, 0.0, 1.0)             # 0 inside, 1 at the border
    mask = 0.5 * (1.0 + np.cos(np.pi * t))
    mask[r >= 1.0] = 0.0
    return mask.astype(np.float32)


def paste_back(canvas: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A new canvas with ``crop`` blended in where ``matrix`` took it from.

    ``canvas``: numpy ``uint8`` ``(H, W, C)``; ``crop``: numpy ``uint8`` ``(S, S, C)`` (e.g. the
    cartoonized :func:`crop_face`); ``matrix``: the 2x3 photo->crop matrix; ``mask``: float
    ``(S, S)`` weights in [0, 1] (:func:`feather_mask`). Crop and mask are warped back with the
    inverse matrix (bilinear; mask 0 outside the crop), blended in float32 and rounded. Only the
    crop's bounding box in the canvas is touched; call once per face (overlaps blend in order).
    """
    if crop.shape[:2] != mask.shape:
        raise ValueError(f"paste_back: crop {crop.shape[:2]} and mask {mask.shape} differ in size")
    if crop.ndim != canvas.ndim or (crop.ndim == 3 and crop.shape[2] != canvas.shape[2]):
        raise ValueError(f"paste_back: crop {crop.shape} and canvas {canvas.shape} differ in channels")
    out = canvas.copy()
    h, w = canvas.shape[:2]
    s = crop.shape[0]
    inverse = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]], dtype=np.float64) @ inverse.T
    x0 = max(0, int(np.floor(corners[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(corners[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return out
    inverse[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop, inverse, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.float32), inverse, size,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if warped.ndim == 3:
        alpha = alpha[:, :, None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + alpha * (warped.astype(np.float32) - region)
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out

