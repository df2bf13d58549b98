"""Image comparisons shared by the README figure, the dashboard and the notebooks."""

from __future__ import annotations

import numpy as np


def side_by_side(*images: np.ndarray, gap: int = 8, background: int = 255) -> np.ndarray:
    """Place ``(H, W, 3)`` uint8 images left to right, top-aligned, ``gap`` pixels apart."""
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for im in images:
        canvas[:im.shape[0], x:x + im.shape[1]] = im[..., :3]
        x += im.shape[1] + gap
    return canvas


def _make_readme_figure(dest: str) -> None:
    """The README's before/after picture, made by the project from the astronaut portrait."""
    import torch

    from .fileio import write_atomic
    from .imageio import encode_image, read_image
    from .pipeline import Cartoonizer
    from .samples import astronaut_path
    from .transforms import resize_long_side

    photo = resize_long_side(read_image(astronaut_path()).rgb, 384)
    cartoon = Cartoonizer(device="cpu")(photo, style_weight=1.0, resolution=384)
    figure = side_by_side(photo.permute(1, 2, 0).numpy(), cartoon.permute(1, 2, 0).numpy())
    write_atomic(dest, encode_image(torch.from_numpy(figure).permute(2, 0, 1), format="jpg", quality=90))
    print(f"wrote {dest}")


if __name__ == "__main__":
    import sys

    _make_readme_figure(sys.argv[1] if len(sys.argv) > 1 else "docs/before_after.jpg")
