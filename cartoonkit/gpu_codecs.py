"""JPEG on the GPU (nvJPEG through torchvision) for the folder stream and single photos, with the CPU codecs as
the fallback.

Only JPEGs that nvJPEG decodes to what Pillow gives take this path (:func:`plain_jpeg`); everything else, and
any batch nvJPEG refuses, goes through :func:`~cartoonkit.imageio.read_image` as on the CPU.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import warnings

import torch

from . import colour
from .errors import InvalidImageError
from .formats import ImageLimits
from .imageencode import encode_image
from .imageio import DecodedImage, check_dimensions, read_file_bytes, read_image

log = logging.getLogger(__name__)


def plain_jpeg(data: bytes, name: str, limits: ImageLimits) -> bool:
    """Whether nvJPEG can decode ``data`` to exactly what Pillow would give: a baseline-style RGB or grey
    JPEG without an EXIF rotation or a colour profile other than sRGB (those, CMYK and the rest take the CPU
    path, which handles them)."""
    if data[:3] != b"\xff\xd8\xff":
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from PIL import Image

            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                    return False
                check_dimensions(image.size, name, limits)  # the pixel limit, before any decoding
                exif = image.getexif()
                if not exif and image.info.get("exif"):
                    return False  # unreadable EXIF: the CPU path says so in the notes
                if not colour.is_srgb(image.info.get("icc_profile")) or \
                        (image.mode == "L" and image.info.get("icc_profile")):
                    return False  # a wide-gamut (or grey) profile: converted to sRGB on the CPU
                return exif.get(0x0112, 1) == 1
    except InvalidImageError:
        raise
    except Exception:
        return False  # let the CPU decoder give the precise error


def decode_jpegs(jpegs: list[torch.Tensor], names: list[str], device: torch.device) -> list[DecodedImage]:
    """nvJPEG-decode several JPEGs (their bytes as uint8 tensors) in one call; raises on any error."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation notice for its image codecs
        images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    return [DecodedImage(rgb=rgb, alpha=None, name=name, format="JPEG")
            for rgb, name in zip(images, names, strict=True)]


def encode_jpegs(rgbs: list[torch.Tensor], quality: int) -> list[bytes | None]:
    """nvJPEG-encode a batch of JPEG outputs, tagged sRGB like the CPU encoder's; ``None`` each (the writers
    encode on the CPU) on any error."""
    try:
        from torchvision.io import encode_jpeg

        images = [rgb.contiguous() for rgb in rgbs]
        # nvJPEG encodes on a stream of its own that does not wait for ours: the pixels must be there first.
        torch.cuda.current_stream(images[0].device).synchronize()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoded = encode_jpeg(images, quality=quality)
            return [colour.tag_jpeg(bytes(tensor.cpu().numpy().tobytes())) for tensor in encoded]
    except Exception as exc:
        log.debug("nvJPEG could not encode a batch (%s); using the CPU encoder", exc)
        return [None] * len(rgbs)


def pinned(decoded: DecodedImage) -> DecodedImage:
    """The same image in page-locked memory, so the copy to the GPU is asynchronous."""
    try:
        return dataclasses.replace(decoded, rgb=decoded.rgb.pin_memory())
    except RuntimeError:
        return decoded


def to_pinned_host(rgb: torch.Tensor) -> torch.Tensor:
    """An asynchronous copy of a CUDA tensor into page-locked host memory, queued on the current stream (read the
    result after that stream's next event). The pinned block comes from torch's caching host allocator, so
    buffers are reused across batches rather than allocated per image."""
    host = torch.empty(rgb.shape, dtype=rgb.dtype, pin_memory=True)
    host.copy_(rgb, non_blocking=True)
    # ``rgb`` was made on the engine's stream; without this its memory could be reused there before the copy ran.
    rgb.record_stream(torch.cuda.current_stream(rgb.device))
    return host


def read_for_device(source: str | os.PathLike, device: torch.device, limits: ImageLimits = ImageLimits(), *,
                    name: str | None = None) -> DecodedImage:
    """One photo file decoded for ``device``: on CUDA a plain JPEG goes through nvJPEG straight into device memory
    (no decode on the host, no copy up); everything else, or if nvJPEG refuses the file, as
    :func:`~cartoonkit.imageio.read_image` decodes it. Same errors as ``read_image``."""
    name = os.fsdecode(source) if name is None else name
    data = read_file_bytes(source, name, limits)
    if device.type == "cuda" and plain_jpeg(data, name, limits):
        try:
            return decode_jpegs([torch.frombuffer(bytearray(data), dtype=torch.uint8)], [name], device)[0]
        except Exception as exc:
            log.debug("nvJPEG could not decode %s (%s); using the CPU decoder", name, exc)
    return read_image(data, name=name, limits=limits)


def encode_for_device(rgb: torch.Tensor, alpha: torch.Tensor | None, format: str, quality: int) -> bytes:
    """A result's file bytes: JPEG output of a CUDA result through nvJPEG (JPEG keeps no alpha), everything else,
    or if nvJPEG refuses, through :func:`~cartoonkit.imageencode.encode_image`."""
    if rgb.is_cuda and format == "jpg":
        if (data := encode_jpegs([rgb], quality)[0]) is not None:
            return data
    return encode_image(rgb, alpha, format=format, quality=quality)
