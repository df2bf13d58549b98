"""Pictures for people: images side by side, labelled grids, the README's before/after figure."""

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


def grid(images, rows: int, cols: int, labels=None, *, gap: int = 8, background: int = 255,
         label_height: int = 20) -> np.ndarray:
    """Place ``rows * cols`` ``(H, W, 3)`` uint8 images in a grid, row by row, ``gap`` pixels apart.

    Every cell is as large as the largest image (images of other sizes sit top-left in their cell).
    ``labels`` (one string per image) are drawn in a ``label_height`` strip above each cell.
    Returns one ``(H, W, 3)`` uint8 image.
    """
    images = list(images)
    if rows < 1 or cols < 1 or len(images) != rows * cols:
        raise ValueError(f"grid of {rows}x{cols} needs {rows * cols} images, got {len(images)}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    cell_h = max(im.shape[0] for im in images) + (label_height if labels is not None else 0)
    cell_w = max(im.shape[1] for im in images)
    canvas = np.full((rows * cell_h + gap * (rows - 1), cols * cell_w + gap * (cols - 1), 3),
                     background, dtype=np.uint8)
    offset = label_height if labels is not None else 0
    for i, im in enumerate(images):
        y, x = (i // cols) * (cell_h + gap), (i % cols) * (cell_w + gap)
        canvas[y + offset:y + offset + im.shape[0], x:x + im.shape[1]] = im[..., :3]
    if labels is not None:
        from PIL import Image, ImageDraw

        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for i, label in enumerate(labels):
            y, x = (i // cols) * (cell_h + gap), (i % cols) * (cell_w + gap)
            draw.text((x + 2, y + 4), str(label), fill=(0, 0, 0))
        canvas = np.asarray(picture).copy()
    return canvas


def make_readme_figure(dest: str) -> None:
    """The README's before/after picture, made by the project from the astronaut portrait."""
    import torch

    from ..fileio import write_atomic
    from ..imageencode import encode_image
    from ..imageio import read_image
    from ..pipeline import Cartoonizer
    from ..samples import astronaut_path
    from ..transforms import resize_long_side

    photo = resize_long_side(read_image(astronaut_path()).rgb, 384)
    cartoon = Cartoonizer.from_pretrained(device="cpu")(photo, style_weight=1.0, resolution=384)
    figure = side_by_side(photo.permute(1, 2, 0).numpy(), cartoon.permute(1, 2, 0).numpy())
    write_atomic(dest, encode_image(torch.from_numpy(figure).permute(2, 0, 1), format="jpg", quality=90))
    print(f"wrote {dest}")

