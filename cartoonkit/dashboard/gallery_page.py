"""Gallery page: every result of this session (Cartoonize and Batch), with its settings; compare two; one zip."""

from __future__ import annotations

import numpy as np

from . import before_after, common, gallery

COLUMNS = 4
SHOWN_SETTINGS = ("model", "resolution", "style_weight", "mode", "precision", "format")


def caption(item: gallery.GalleryItem) -> str:
    shown = ", ".join(f"{name.replace('_', ' ')} {item.settings[name]}" for name in SHOWN_SETTINGS
                      if name in item.settings)
    return f"{item.label}: {shown}"


def _same_size(picture: np.ndarray, like: np.ndarray) -> np.ndarray:
    if picture.shape == like.shape:
        return picture
    from PIL import Image

    return np.asarray(Image.fromarray(picture).resize((like.shape[1], like.shape[0]), Image.Resampling.LANCZOS))


def render(st, settings: common.Settings) -> None:
    st.title("Gallery")
    store = gallery.of(st.session_state)
    items = store.items
    st.caption(f"Every result of this session from the Cartoonize and Batch pages, with the settings it was made "
               f"with (the last {gallery.MAX_ITEMS} are kept, up to {gallery.MAX_BYTES // 2**20} MB of files). "
               "It stays while you switch pages.")
    if not items:
        st.info("Nothing yet: cartoonize some photos (Cartoonize or Batch page) and they appear here.")
        return
    if store.dropped:
        st.caption(f"{store.dropped} older result(s) were dropped to keep the session's memory bounded.")

    left, right = st.columns([1, 1])
    left.download_button(f"Download all {len(items)} as one zip", gallery.zip_all(items),
                         file_name="cartoonkit-gallery.zip", mime="application/zip", key="gallery_zip",
                         type="primary")
    if right.button("Clear the gallery", key="gallery_clear"):
        store.items.clear()
        st.rerun()

    st.subheader("Compare two results")
    labels = {item.label: item for item in items}
    names = list(labels)
    first, second = st.columns(2)
    a = labels[first.selectbox("Left", names, index=0, key="gallery_a")]
    b = labels[second.selectbox("Right", names, index=min(1, len(names) - 1), key="gallery_b")]
    left_picture = a.picture()
    before_after.show(st, left_picture, _same_size(b.picture(), left_picture),
                      label_before=f"#{a.number}", label_after=f"#{b.number}")
    changes = gallery.differences(a, b)
    st.caption("Settings that differ: " + "; ".join(changes) if changes else
               "Both were made with the same settings.")

    st.subheader("All results")
    for start in range(0, len(items), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), items[start:start + COLUMNS], strict=False):
            column.image(item.picture(), caption=caption(item))
