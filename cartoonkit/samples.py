"""Sample portraits that need no upload: scikit-image's astronaut, plus ``../shared/images`` when present."""

from __future__ import annotations

from pathlib import Path

from . import paths

SHARED_PORTRAITS = ("wb_actress2.jpg", "wb_liuyifei4.jpg", "wb_party5.jpg")


def astronaut_path() -> Path:
    """Eileen Collins' NASA portrait (public domain), shipped inside the scikit-image wheel, saved once as JPEG."""
    path = paths.cache_dir() / "samples" / "astronaut.jpg"
    if not path.is_file():
        import io

        from PIL import Image
        from skimage import data

        from .fileio import write_atomic

        buffer = io.BytesIO()
        Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=95)
        write_atomic(path, buffer.getvalue())
    return path


def sample_photos() -> list[Path]:
    photos = [astronaut_path()]
    shared = paths.shared_images_dir()
    if shared is not None:
        photos += [shared / name for name in SHARED_PORTRAITS if (shared / name).is_file()]
    return photos
