"""What image files cartoonkit reads and writes, and the limits on untrusted input: no torch, no Pillow.

The command line builds its ``--help`` from these before it imports anything heavy; the codecs
themselves are in :mod:`cartoonkit.imageio` (reading) and :mod:`cartoonkit.imageencode` (writing).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width * height) accepted; checked from the header, before decoding."""

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest input file accepted; checked with ``os.stat`` before reading."""

OUTPUT_FORMATS = ("png", "jpg", "webp")
"""Formats :func:`~cartoonkit.imageencode.encode_image` writes; ``"jpeg"`` is accepted as an alias of ``"jpg"``."""

READ_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Pillow's format name: (what it is, the file suffixes it comes with)
    "JPEG": ("JPEG", (".jpg", ".jpeg", ".jpe", ".jfif")),
    "MPO": ("multi-picture JPEG (cameras' stereo and depth pictures; the first picture is used)", (".mpo",)),
    "PNG": ("PNG and animated PNG (first frame)", (".png", ".apng")),
    "WEBP": ("WebP (first frame)", (".webp",)),
    "HEIF": ("HEIC / HEIF (iPhone and Android photos; the primary image)", (".heic", ".heif", ".hif")),
    "AVIF": ("AVIF (first frame)", (".avif",)),
    "JXL": ("JPEG XL (with the jxl extra)", (".jxl",)),
    "TIFF": ("TIFF (scans, camera and editor exports; the first page)", (".tif", ".tiff")),
    "JPEG2000": ("JPEG 2000 (archives, scans)", (".jp2", ".j2k", ".j2c", ".jpc", ".jpf", ".jpx")),
    "BMP": ("Windows bitmap", (".bmp", ".dib")),
    "DIB": ("Windows bitmap", ()),
    "GIF": ("GIF (first frame)", (".gif",)),
    "PPM": ("Netpbm (what raw converters such as dcraw write)", (".ppm", ".pgm", ".pbm", ".pnm")),
}
"""The formats cartoonkit decodes, by the name Pillow gives the file's *content* (a file's suffix does not
decide: a PNG named ``.jpg`` is read as the PNG it is). Chosen because people have photos in them; Pillow
opens others, refused below as not photos, which also keeps their decoders away from untrusted files."""

IMAGE_SUFFIXES = frozenset(suffix for _, suffixes in READ_FORMATS.values() for suffix in suffixes)
"""File suffixes picked up when a folder is given as input (every other file is reported as skipped)."""

UNSUPPORTED_SUFFIXES: dict[str, str] = {
    **dict.fromkeys((".psd", ".psb"), "Photoshop document (layers; export it as JPEG, PNG or TIFF)"),
    **dict.fromkeys((".xcf", ".kra", ".ora"), "layered editor document (export it as JPEG, PNG or TIFF)"),
    **dict.fromkeys((".ico", ".cur", ".icns"), "icon, not a photo"),
    **dict.fromkeys((".dds", ".tga", ".blp", ".ftex", ".vtf", ".ktx", ".pvr"), "game or GPU texture, not a photo"),
    **dict.fromkeys((".svg", ".svgz", ".eps", ".ps", ".ai", ".wmf", ".emf", ".pdf"),
                    "vector drawing or document, not a photo"),
    **dict.fromkeys((".exr", ".hdr", ".pfm"), "high dynamic range image (tone-map it to JPEG, PNG or TIFF)"),
    **dict.fromkeys((".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                     ".raf", ".pef", ".srw", ".raw", ".3fr", ".erf", ".kdc", ".mrw", ".x3f", ".iiq"),
                    "camera raw file (develop it to JPEG or TIFF first)"),
    **dict.fromkeys((".pcx", ".sgi", ".rgb", ".rgba", ".bw", ".ras", ".sun", ".xbm", ".xpm", ".im", ".msp",
                     ".pcd", ".pxr", ".fits", ".fit", ".fts", ".qoi", ".gbr", ".mic", ".iim", ".wal", ".dcx",
                     ".fli", ".flc", ".jng", ".mng", ".wbmp", ".xwd"),
                    "image format cartoonkit does not read (not one photos come in)"),
}
"""Image file suffixes cartoonkit recognises but does not read, with why: a folder's account says so instead
of calling them "not an image"."""

UNSUPPORTED_PILLOW_FORMATS: dict[str, str] = {
    "PSD": "Photoshop document", "ICO": "icon", "CUR": "cursor", "ICNS": "macOS icon", "DDS": "GPU texture",
    "TGA": "Targa texture", "BLP": "game texture", "FTEX": "game texture", "EPS": "PostScript document",
    "PDF": "PDF document", "QOI": "QOI image", "PCX": "PCX image", "SGI": "SGI image", "SUN": "Sun raster image",
    "XBM": "X bitmap", "XPM": "X pixmap", "FITS": "FITS astronomy image", "IM": "IFUNC image",
    "MSP": "MSP image", "PCD": "Photo CD image", "PIXAR": "Pixar image", "GBR": "GIMP brush",
    "MIC": "Microsoft Image Composer image", "IPTC": "IPTC data", "DCX": "DCX fax image", "FLI": "FLI animation",
    "WMF": "Windows metafile", "SPIDER": "SPIDER image", "MCIDAS": "McIdas image", "PALM": "Palm image",
}
"""Descriptions for the formats Pillow opens that cartoonkit refuses (the error names what the file is)."""

VIDEO_SUFFIXES = frozenset({".mov", ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".3gp", ".mts", ".m2ts"})
"""Clips found among photos (a phone's Live Photos and videos): not images, but the account says where they go."""

JXL_EXTRA = "jxl"
"""The optional dependency that reads JPEG XL: ``pip install 'cartoonkit[jxl]'`` (pillow-jxl-plugin)."""


def suffix_kind(suffix: str) -> tuple[str, str]:
    """What a folder does with a file of this suffix: ``("image", "")``, ``("unsupported", why)`` or
    ``("not an image", "")``; case does not matter."""
    suffix = suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image", ""
    if suffix in UNSUPPORTED_SUFFIXES:
        return "unsupported", UNSUPPORTED_SUFFIXES[suffix]
    return "not an image", ""


READ_FORMAT_NAMES = ("JPEG, PNG, WEBP, HEIC/HEIF, AVIF, JPEG XL, TIFF, JPEG 2000, BMP, GIF (first frame), MPO (first "
                     "picture), Netpbm")
"""The formats read, in words, for help texts and the dashboard."""


_FORMAT_ALIASES = {"jpeg": "jpg"}


@dataclass(frozen=True)
class ImageLimits:
    """Resource limits for decoding untrusted inputs (decompression bombs, huge files)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        for field in ("max_pixels", "max_file_bytes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")


def extension_for(format: str) -> str:
    """File extension (with dot) for an output format: ``"jpeg"`` -> ``".jpg"``."""
    return "." + normalise_format(format)


def normalise_format(format: str) -> str:
    """``"JPEG"``, ``".jpg"`` -> ``"jpg"``; an unsupported format raises :class:`ConfigError`."""
    fmt = str(format).strip().lower().lstrip(".")
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(
            f"output format {format!r} is not supported; choose one of "
            f"{', '.join(OUTPUT_FORMATS)} (or jpeg)"
        )
    return fmt
