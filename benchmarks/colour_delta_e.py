"""What colour management changes: CIEDE2000 between reading a wide-gamut photo as if it were sRGB (what
cartoonkit did before it applied profiles) and reading it correctly, for the photos in ../shared/images.

    .venv/bin/python benchmarks/colour_delta_e.py [--json out.json]

Each photo (sRGB) is converted by littlecms to Display P3 and to Adobe RGB (1998) and stored with that profile
embedded, as a phone or a camera stores it (PNG, so no codec loss blurs the figures). Then:

* ``unmanaged``: the stored numbers taken as sRGB (the pixels as stored; no profile applied);
* ``cartoonkit``: :func:`cartoonkit.imageio.read_image`, which converts to sRGB through the profile;
* the reference is the photo itself (sRGB): a correct conversion gives it back within rounding.

A last row is a chart of saturated Display P3 colours (all the P3 gamut's edges, 4096 colours) where the correct
reading is littlecms's floating-point conversion, clipped to sRGB.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from skimage.color import deltaE_ciede2000, rgb2lab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cartoonkit import colour  # noqa: E402
from cartoonkit.imageio import read_image  # noqa: E402

PROFILES = {
    "Display P3": colour.matrix_profile("Display P3", colour.DISPLAY_P3_PRIMARIES),
    "Adobe RGB (1998)": colour.matrix_profile("Adobe RGB (1998)", colour.ADOBE_RGB_PRIMARIES,
                                              gamma=colour.ADOBE_RGB_GAMMA),
}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 per pixel between two sRGB uint8 images (skimage's sRGB -> Lab, D65)."""
    return deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0)).ravel()


def stats(values: np.ndarray) -> dict:
    return {"mean": round(float(values.mean()), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "max": round(float(values.max()), 2), "share_over_2": round(float((values > 2).mean()), 3)}


def tagged(srgb: np.ndarray, profile: bytes) -> bytes:
    """The photo as a wide-gamut device stores it: converted to ``profile``, which is embedded."""
    target = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    stored = ImageCms.profileToProfile(Image.fromarray(srgb), SRGB, target,
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", icc_profile=profile)
    return buffer.getvalue()


def p3_chart() -> tuple[bytes, np.ndarray]:
    """Saturated P3 colours (one channel at 0 or 255), and littlecms's float conversion of them, clipped."""
    levels = np.linspace(0, 255, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(-1, 3)
    edge = grid[(grid == 0).any(axis=1) | (grid == 255).any(axis=1)]
    chart = np.round(edge).astype(np.uint8)[None]
    buffer = io.BytesIO()
    Image.fromarray(chart).save(buffer, "PNG", icc_profile=PROFILES["Display P3"])
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(PROFILES["Display P3"]))
    transform = ImageCms.buildTransform(p3, SRGB, "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    correct = np.asarray(ImageCms.applyTransform(Image.fromarray(chart), transform))
    return buffer.getvalue(), correct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    images = sorted(p for p in (ROOT.parent / "shared" / "images").iterdir() if p.suffix in (".jpg", ".png"))
    rows = []
    for name, profile in PROFILES.items():
        unmanaged, managed = [], []
        for path in images:
            photo = read_image(path).rgb.permute(1, 2, 0).numpy()
            data = tagged(photo, profile)
            with Image.open(io.BytesIO(data)) as image:
                as_stored = np.asarray(image.convert("RGB"))
            unmanaged.append(delta_e(as_stored, photo))
            managed.append(delta_e(read_image(data).rgb.permute(1, 2, 0).numpy(), photo))
        rows.append({"input": f"{len(images)} photos stored as {name}", "pixels": int(sum(map(len, unmanaged))),
                     "unmanaged": stats(np.concatenate(unmanaged)), "cartoonkit": stats(np.concatenate(managed))})
    data, correct = p3_chart()
    with Image.open(io.BytesIO(data)) as image:
        as_stored = np.asarray(image.convert("RGB"))
    rows.append({"input": "P3 gamut-edge chart", "pixels": int(correct.shape[1]),
                 "unmanaged": stats(delta_e(as_stored, correct)),
                 "cartoonkit": stats(delta_e(read_image(data).rgb.permute(1, 2, 0).numpy(), correct))})
    for row in rows:
        print(f"{row['input']:<44} {row['pixels']:>10,} px  unmanaged ΔE2000 mean {row['unmanaged']['mean']:5.2f} "
              f"p95 {row['unmanaged']['p95']:5.2f} max {row['unmanaged']['max']:5.2f} "
              f">2: {row['unmanaged']['share_over_2']:5.1%}   cartoonkit mean {row['cartoonkit']['mean']:4.2f} "
              f"max {row['cartoonkit']['max']:4.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
