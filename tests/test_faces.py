"""Faces: YuNet detection on real photos, Umeyama alignment, crop/paste round trip, seamless feathering."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cartoonkit import faces, paths
from cartoonkit.errors import IntegrityError, ModelError
from cartoonkit.weights import registry
from cartoonkit.weights.store import sha256_file

YUNET = registry.KNOWN_MODELS["yunet"]
YUNET_FILE = paths.project_root().parent / "shared" / "models" / YUNET.filename


def _load(folder: Path, name: str, long_side: int | None = None) -> np.ndarray:
    im = Image.open(folder / name).convert("RGB")
    if long_side is not None and max(im.size) > long_side:
        im.thumbnail((long_side, long_side), Image.LANCZOS)
    return np.asarray(im).copy()


@pytest.fixture(scope="module")
def yunet_path() -> Path:
    if not YUNET_FILE.is_file():
        pytest.skip("../shared/models/face_detection_yunet_2026may.onnx is not beside the checkout")
    return registry.detector_path("yunet")


@pytest.fixture(scope="module")
def detector(yunet_path) -> faces.FaceDetector:
    return faces.FaceDetector()


@pytest.fixture(scope="module")
def portrait(shared_images) -> np.ndarray:
    return _load(shared_images, "wb_actress2.jpg", long_side=512)


# ------------------------------------------------------------------------------------------ model file

def test_yunet_is_a_face_detector_in_the_catalogue(tmp_path):
    assert YUNET.kind == "face-detector" and YUNET.licence == "MIT"
    assert registry.KNOWN_MODELS["whitebox"].kind == "network"
    with pytest.raises(ModelError, match="face-detector"):
        registry.install("yunet")
    with pytest.raises(ModelError, match="known: whitebox"):
        registry.ensure_installed("yunet", tmp_path)


def test_detector_path_caches_checked_copy(yunet_path):
    assert yunet_path.parent == paths.models_dir()
    assert sha256_file(yunet_path) == YUNET.sha256
    assert registry.detector_path("yunet") == yunet_path          # second call: the cache
    assert registry.is_installed("yunet")


def test_detector_path_refuses_wrong_sha256(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / YUNET.filename).write_bytes(b"not an onnx model")
    monkeypatch.setattr(paths, "asset_dirs", lambda: [assets])
    monkeypatch.setenv("CARTOONKIT_MODELS", str(tmp_path / "models"))
    # a download would fail with "cannot download", not IntegrityError: the local copy is what is refused
    monkeypatch.setitem(registry.KNOWN_MODELS, "yunet", replace(YUNET, url=(tmp_path / "absent.onnx").as_uri()))
    with pytest.raises(IntegrityError, match=re.escape(f"{assets / YUNET.filename}: sha256")):
        registry.detector_path("yunet")
    assert not (tmp_path / "models" / YUNET.filename).exists()
    assert list((tmp_path / "models").glob("*")) == []   # no partial file left behind


# ------------------------------------------------------------------------------------------ detection

def _check_face(face: faces.Face, shape) -> None:
    x, y, w, h = face.box
    lm = face.landmarks
    assert lm.shape == (5, 2)
    assert 0.6 <= face.score <= 1.0
    # landmarks inside the box (small tolerance), eyes above mouth, subject's right eye on image left
    assert np.all(lm[:, 0] >= x - 0.05 * w) and np.all(lm[:, 0] <= x + 1.05 * w)
    assert np.all(lm[:, 1] >= y - 0.05 * h) and np.all(lm[:, 1] <= y + 1.05 * h)
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert 0 <= x + w / 2 <= shape[1] and 0 <= y + h / 2 <= shape[0]


@pytest.mark.parametrize("name", ["wb_actress2.jpg", "ag3_v3_1.jpg"])
def test_detects_single_face(detector, shared_images, name):
    rgb = _load(shared_images, name)
    result = detector.detect(rgb)
    assert len(result.faces) == 1
    _check_face(result.faces[0], rgb.shape)


def test_detection_maps_back_to_original_pixels(detector, shared_images):
    """The same face found on a full-size photo and a half-size copy: boxes agree after scaling."""
    full = _load(shared_images, "wb_actress2.jpg")            # 756x1024: detected at 640
    half = _load(shared_images, "wb_actress2.jpg", long_side=512)
    a, b = detector.detect(full).faces[0], detector.detect(half).faces[0]
    ratio = full.shape[0] / half.shape[0]
    np.testing.assert_allclose(np.array(b.box) * ratio, a.box, atol=0.06 * a.box[2])
    # YuNet's landmarks move by a few % of the face between resolutions
    np.testing.assert_allclose(b.landmarks * ratio, a.landmarks, atol=0.12 * a.box[2])


@pytest.mark.parametrize("name", ["wb_mountain4.jpg", "wb_food16.jpg"])
def test_no_face(detector, shared_images, name):
    result = detector.detect(_load(shared_images, name))
    assert result.faces == [] and not result


@pytest.mark.parametrize("name, at_least", [("wb_party7.jpg", 4), ("ag3_v3_3.jpg", 3)])
def test_several_faces(detector, shared_images, name, at_least):
    rgb = _load(shared_images, name)
    result = detector.detect(rgb)
    assert len(result.faces) >= at_least
    for face in result.faces:
        _check_face(face, rgb.shape)
    scores = [f.score for f in result.faces]
    assert scores == sorted(scores, reverse=True)


def test_party5_second_face_is_small(detector, shared_images):
    """wb_party5: one clear face plus a ~14 px face in the background, kept only with a lower min_face."""
    rgb = _load(shared_images, "wb_party5.jpg")
    default = detector.detect(rgb)
    assert len(default.faces) >= 1 and len(default.faces) + default.skipped_small >= 2
    relaxed = faces.FaceDetector(min_face=8).detect(rgb)
    assert len(relaxed.faces) >= 2


def test_skips_are_counted(yunet_path, shared_images):
    rgb = _load(shared_images, "wb_party7.jpg")
    found = len(faces.FaceDetector().detect(rgb).faces)
    huge = faces.FaceDetector(min_face=10_000).detect(rgb)
    assert huge.faces == [] and huge.skipped_small == found
    strict = faces.FaceDetector(score_threshold=0.999).detect(rgb)
    assert strict.faces == [] and strict.skipped_low_score >= found


def test_detect_rejects_wrong_input(detector):
    from cartoonkit.errors import InvalidImageError

    with pytest.raises(InvalidImageError):
        detector.detect(np.zeros((10, 10), np.uint8))


# ------------------------------------------------------------------------------------------ alignment

def _similarity(scale, angle, tx, ty):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_umeyama_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(-50, 300, size=(5, 2))
    known = _similarity(1.7, math.radians(23), 40.0, -12.5)
    found = faces.umeyama(src, _apply(known, src))
    np.testing.assert_allclose(found, known, atol=1e-9)
    scale = math.hypot(found[0, 0], found[1, 0])
    assert scale == pytest.approx(1.7) and math.atan2(found[1, 0], found[0, 0]) == pytest.approx(math.radians(23))


def test_umeyama_no_reflection_and_degenerate():
    src = np.array([[0, 0], [1, 0], [0, 1]], float)
    mirrored = src * (-1, 1)
    m = faces.umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        faces.umeyama(np.ones((5, 2)), np.zeros((5, 2)))


@pytest.mark.parametrize("crop_size", [256, 512])
def test_alignment_lands_landmarks_on_template(crop_size):
    template = faces.head_template(crop_size)
    # landmarks of a face in a photo: the template under a known similarity (tilted head, smaller)
    photo_to_crop = _similarity(2.5, math.radians(-17), 30.0, 60.0)
    landmarks = _apply(cv2.invertAffineTransform(photo_to_crop), template)
    matrix = faces.alignment_matrix(landmarks, crop_size)
    np.testing.assert_allclose(_apply(matrix, landmarks), template, atol=1.0)
    np.testing.assert_allclose(matrix, photo_to_crop, atol=1e-6)


def test_template_leaves_room_for_head():
    t = faces.head_template(512) / 512
    eyes_y, mouth_y = t[:2, 1].mean(), t[3:, 1].mean()
    assert 0.4 < eyes_y < 0.52 and 0.6 < mouth_y < 0.7
    assert 0.15 < mouth_y - eyes_y < 0.22                  # face ~half the size of ArcFace's tight crop
    assert t[0, 0] < 0.5 < t[1, 0]


def test_aligned_crop_of_real_face(detector, portrait):
    face = detector.detect(portrait).faces[0]
    matrix = faces.alignment_matrix(face.landmarks, 512)
    template = faces.head_template(512)
    # real landmarks are not an exact similarity of the template, but close
    assert np.abs(_apply(matrix, face.landmarks) - template).max() < 0.05 * 512
    crop = faces.crop_face(portrait, matrix, 512)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    # the detector finds the face again in the crop, upright and near the template
    again = detector.detect(crop).faces
    assert len(again) == 1
    np.testing.assert_allclose(again[0].landmarks, template, atol=0.04 * 512)


def test_face_near_border_still_crops(detector, portrait):
    face = detector.detect(portrait).faces[0]
    x, y, w, h = (int(v) for v in face.box)
    cut = np.ascontiguousarray(portrait[:, x + w // 3:])       # left third of the face cut off
    landmarks = face.landmarks - (x + w // 3, 0)
    matrix = faces.alignment_matrix(landmarks, 256)
    crop = faces.crop_face(cut, matrix, 256)
    assert crop.shape == (256, 256, 3)
    out = faces.paste_back(cut, crop, matrix, faces.feather_mask(256))
    assert out.shape == cut.shape and out.dtype == np.uint8


# ------------------------------------------------------------------------------------------ mask and paste-back

def test_feather_mask_shape_and_values():
    for size in (64, 511, 512):
        mask = faces.feather_mask(size)
        assert mask.shape == (size, size) and mask.dtype == np.float32
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert np.all(border == 0.0)
        assert mask[size // 2, size // 2] == 1.0
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        np.testing.assert_array_equal(mask, mask.T)
        np.testing.assert_array_equal(mask, mask[::-1])
    mask = faces.feather_mask(512)
    assert (mask == 1.0).mean() > 0.3                         # a large fully opaque centre
    # monotone fall-off along a ray from the centre
    assert np.all(np.diff(mask[256, 256:]) <= 0)


def test_paste_back_round_trip_is_identity(detector, portrait):
    """paste_back(canvas, crop_face(canvas, M), M, mask) == canvas.

    Exact within 2 levels on a smooth image (a geometric error of a fraction of a pixel would show
    as tens of levels there); on the sharp photo two bilinear resamplings soften edges a little.
    """
    face = detector.detect(portrait).faces[0]
    matrix = faces.alignment_matrix(face.landmarks, 512)
    mask = faces.feather_mask(512)
    smooth = cv2.GaussianBlur(portrait, (0, 0), 3)
    out = faces.paste_back(smooth, faces.crop_face(smooth, matrix, 512), matrix, mask)
    diff = np.abs(out.astype(int) - smooth.astype(int))
    assert diff.max() <= 2, diff.max()
    # a half-pixel misplacement of the crop would not pass that check
    shifted = matrix.copy()
    shifted[:, 2] += 0.5 * matrix[:, :2].sum(axis=1)
    wrong = faces.paste_back(smooth, faces.crop_face(smooth, shifted, 512), matrix, mask)
    assert np.abs(wrong.astype(int) - smooth.astype(int)).max() > 2
    out = faces.paste_back(portrait, faces.crop_face(portrait, matrix, 512), matrix, mask)
    diff = np.abs(out.astype(int) - portrait.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))


def test_paste_back_leaves_far_pixels_alone(portrait):
    matrix = faces.alignment_matrix(faces.head_template(128) * 0.5 + 10, 128)   # small head top-left
    out = faces.paste_back(portrait, np.zeros((128, 128, 3), np.uint8), matrix, faces.feather_mask(128))
    assert np.array_equal(out[200:], portrait[200:]) and np.array_equal(out[:, 200:], portrait[:, 200:])
    assert not np.array_equal(out[:100, :100], portrait[:100, :100])


def _gradient(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float32)
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
    gy[1:-1] = (f[2:] - f[:-2]) / 2
    return np.sqrt(gx ** 2 + gy ** 2).mean(axis=2)


def _seam_and_inside(canvas, crop, matrix, mask):
    out = faces.paste_back(canvas, crop, matrix, mask)
    inverse = cv2.invertAffineTransform(matrix)
    alpha = cv2.warpAffine(mask, inverse, canvas.shape[1::-1], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    ring = (alpha > 0.05) & (alpha < 0.95)
    inside = alpha >= 0.999
    grad = _gradient(out)
    return grad[ring].mean(), grad[inside].mean()


@pytest.mark.parametrize("modify", ["offset", "colour"])
def test_no_visible_seam(detector, portrait, modify):
    face = detector.detect(portrait).faces[0]
    matrix = faces.alignment_matrix(face.landmarks, 512)
    crop = faces.crop_face(portrait, matrix, 512).astype(np.int16)
    if modify == "offset":                                       # a strong, uniform change of the head
        changed = np.clip(crop + 60, 0, 255).astype(np.uint8)
    else:                                                        # a colour shift, as a cartoon makes
        changed = np.clip(crop * (0.7, 0.9, 1.2) + (40, 0, -20), 0, 255).astype(np.uint8)
    seam, inside = _seam_and_inside(portrait, changed, matrix, faces.feather_mask(512))
    assert seam <= inside, (seam, inside)
    # the same check fails for a hard (binary) mask, so it can detect a seam
    hard = np.zeros((512, 512), np.float32)
    hard[64:-64, 64:-64] = 1.0
    seam_hard, inside_hard = _seam_and_inside(portrait, changed, matrix, hard)
    assert seam_hard > inside_hard, (seam_hard, inside_hard)


def test_overlapping_faces_paste_sequentially(detector, shared_images):
    rgb = _load(shared_images, "wb_party7.jpg", long_side=800)
    photo = rgb.copy()
    found = detector.detect(rgb).faces
    assert len(found) >= 2
    matrices = [faces.alignment_matrix(f.landmarks, 256) for f in found]
    crops = np.stack([faces.crop_face(rgb, m, 256) for m in matrices])   # one batch for the network
    assert crops.shape == (len(found), 256, 256, 3)
    mask = faces.feather_mask(256)
    canvas = rgb
    for crop, m in zip(255 - crops, matrices, strict=True):              # one by one, later over earlier
        canvas = faces.paste_back(canvas, crop, m, mask)
    assert canvas.shape == rgb.shape and canvas is not rgb
    np.testing.assert_array_equal(rgb, photo)                            # the photo itself is untouched
    for f in found:                                                        # every face centre changed
        cx, cy = f.landmarks[2].astype(int)
        assert np.abs(canvas[cy, cx].astype(int) - rgb[cy, cx].astype(int)).sum() > 30


def test_paste_back_outside_the_canvas_is_an_unchanged_copy(portrait):
    far = np.array([[1.0, 0.0, -10_000.0], [0.0, 1.0, -10_000.0]])     # the crop lies far off the photo
    crop = faces.crop_face(portrait, far, 128)
    assert crop.shape == (128, 128, 3)
    out = faces.paste_back(portrait, 255 - crop, far, faces.feather_mask(128))
    assert np.array_equal(out, portrait) and out is not portrait


def test_detector_path_replaces_damaged_cache(yunet_path, tmp_path, monkeypatch):
    monkeypatch.setenv("CARTOONKIT_MODELS", str(tmp_path))
    cached = tmp_path / YUNET.filename
    cached.write_bytes(b"damaged")
    assert not registry.is_installed("yunet")
    assert registry.detector_path("yunet") == cached
    assert sha256_file(cached) == YUNET.sha256


def test_detector_path_downloads_when_no_local_copy(yunet_path, tmp_path, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    (www / "yunet.onnx").write_bytes(yunet_path.read_bytes())
    (www / "junk.onnx").write_bytes(b"not the published file")
    monkeypatch.setattr(paths, "asset_dirs", lambda: [])
    monkeypatch.setenv("CARTOONKIT_MODELS", str(tmp_path / "models"))

    junk = replace(YUNET, url=(www / "junk.onnx").as_uri())
    monkeypatch.setitem(registry.KNOWN_MODELS, "yunet", junk)
    with pytest.raises(IntegrityError, match=re.escape(f"{junk.url}: sha256")):
        registry.detector_path("yunet")
    assert list((tmp_path / "models").iterdir()) == []                    # nothing half-written kept

    monkeypatch.setitem(registry.KNOWN_MODELS, "yunet", replace(YUNET, url=(www / "yunet.onnx").as_uri()))
    found = registry.detector_path("yunet")
    assert found == tmp_path / "models" / YUNET.filename
    assert [p.name for p in found.parent.iterdir()] == [YUNET.filename]
    assert sha256_file(found) == YUNET.sha256
