"""The session gallery: every result of this browser session, from every page, kept with the settings it was
made with, so it survives switching pages, can be compared with another and downloaded with the rest as one zip.

Plain functions over ``st.session_state`` (a mapping), no Streamlit calls: the page that draws it is
:mod:`.gallery_page`. The gallery keeps only the encoded file of each result (the pictures are decoded from it when
shown): at most :data:`MAX_ITEMS` results and :data:`MAX_BYTES` of files, dropping the oldest past either, saying so.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GALLERY_KEY = "session_gallery"
MAX_ITEMS = 100
MAX_BYTES = 200 * 2**20
"""What one session's gallery may hold: 100 results, and 200 MB of files (about 100 PNGs at 1024 px). Enough for a
demo, bounded for a shared server; the decoded pictures are not kept (three times the size of a PNG each)."""


@dataclass
class GalleryItem:
    number: int                 # 1, 2, ... in the order made (stays when older ones are dropped)
    name: str                   # the photo's file name
    page: str                   # the page that made it
    settings: dict[str, Any]    # Settings.flat() of the run
    data: bytes                 # the encoded output
    file_name: str
    seconds: float = 0.0
    created: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"#{self.number} {self.name} ({self.page})"

    def picture(self) -> np.ndarray:
        """The cartoon as ``(H, W, 3)`` uint8, decoded from the file."""
        from PIL import Image

        with Image.open(io.BytesIO(self.data)) as image:
            return np.asarray(image.convert("RGB"))


@dataclass
class Gallery:
    items: list[GalleryItem] = field(default_factory=list)
    made: int = 0          # results ever added, dropped ones included
    dropped: int = 0

    @property
    def bytes(self) -> int:
        return sum(len(item.data) for item in self.items)


def of(state) -> Gallery:
    """This session's gallery (created on first use)."""
    gallery = state.get(GALLERY_KEY)
    if gallery is None:
        gallery = state[GALLERY_KEY] = Gallery()
    return gallery


def add(state, outcome, settings, page: str) -> GalleryItem | None:
    """Keep a successful ``outcome`` (a :class:`~.common.Outcome`) made with ``settings`` on ``page``; errors are
    not results and are not kept."""
    if outcome.error or not outcome.data:
        return None
    gallery = of(state)
    gallery.made += 1
    item = GalleryItem(number=gallery.made, name=outcome.name, page=page, settings=dict(settings.flat()),
                       data=outcome.data, file_name=outcome.file_name, seconds=outcome.seconds)
    gallery.items.append(item)
    while len(gallery.items) > 1 and (len(gallery.items) > MAX_ITEMS or gallery.bytes > MAX_BYTES):
        del gallery.items[0]
        gallery.dropped += 1
    return item


def differences(a: GalleryItem, b: GalleryItem) -> list[str]:
    """``["resolution 1024 / 512", ...]``: the settings two results were made with where they differ."""
    names = list(dict.fromkeys([*a.settings, *b.settings]))
    return [f"{name.replace('_', ' ')} {a.settings.get(name)} / {b.settings.get(name)}"
            for name in names if a.settings.get(name) != b.settings.get(name)]


def zip_all(items: list[GalleryItem]) -> bytes:
    """Every item's file (``003-portrait.png``: numbered, so equal names never collide) and ``gallery.json``
    with the page and settings of each."""
    buffer = io.BytesIO()
    index = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:   # the images are compressed already
        for item in items:
            member = f"{item.number:03d}-{item.file_name}"
            archive.writestr(member, item.data)
            index.append({"file": member, "photo": item.name, "page": item.page, "settings": item.settings,
                          "seconds": round(item.seconds, 3),
                          "made": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(item.created))})
        archive.writestr("gallery.json", json.dumps(index, indent=2, default=str) + "\n")
    return buffer.getvalue()
