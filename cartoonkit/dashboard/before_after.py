"""A before/after view with a draggable divider: the cartoon over the photo, cut at the divider.

A small component of ours (``st.iframe`` of an HTML page: HTML, CSS and a few lines of script, both images inline as
data URLs) rather than ``streamlit-image-comparison``, which loads its script from a CDN at view time: the
dashboard must work on a machine without internet, and this needs no build step or JavaScript dependency.

The divider is an ``<input type="range">`` laid over the images, so it is draggable with a mouse or a finger and
moves with the arrow keys; dragging sets the ``clip-path`` of the cartoon.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

START_PERCENT = 50


def data_url(rgb: np.ndarray, quality: int = 90) -> str:
    """``(H, W, 3)`` uint8 -> a JPEG ``data:`` URL (JPEG: a 1024-px pair stays a few hundred kB in the page)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def page(before: np.ndarray, after: np.ndarray, *, label_before: str = "before", label_after: str = "after") -> str:
    """The component's HTML: ``after`` over ``before`` (same size; ``before`` is resized by the browser if not)."""
    b, a = data_url(before), data_url(after)
    lb, la = html.escape(label_before), html.escape(label_after)
    return f"""<!doctype html><html><head><style>
  body {{ margin: 0; font-family: sans-serif; }}
  .ba {{ position: relative; width: 100%; user-select: none; }}
  .ba img {{ display: block; width: 100%; height: auto; }}
  .ba img.after {{ position: absolute; top: 0; left: 0; clip-path: inset(0 0 0 {START_PERCENT}%); }}
  .ba .line {{ position: absolute; top: 0; bottom: 0; left: {START_PERCENT}%; width: 2px; background: #fff;
              box-shadow: 0 0 3px #000; pointer-events: none; }}
  .ba input {{ position: absolute; top: 0; left: 0; width: 100%; height: 100%; margin: 0; opacity: 0;
               cursor: ew-resize; }}
  .ba .tag {{ position: absolute; top: 6px; padding: 2px 6px; background: rgba(0,0,0,.55); color: #fff;
             font-size: 12px; border-radius: 3px; pointer-events: none; }}
</style></head><body>
<div class="ba" id="ba">
  <img class="before" src="{b}" alt="{lb}">
  <img class="after" id="after" src="{a}" alt="{la}">
  <div class="line" id="line"></div>
  <span class="tag" style="left: 6px">{lb}</span><span class="tag" style="right: 6px">{la}</span>
  <input type="range" id="divider" min="0" max="100" value="{START_PERCENT}" step="0.5"
         aria-label="divider between {lb} and {la}">
</div>
<script>
  const divider = document.getElementById("divider");
  function cut() {{
    document.getElementById("after").style.clipPath = "inset(0 0 0 " + divider.value + "%)";
    document.getElementById("line").style.left = divider.value + "%";
  }}
  divider.addEventListener("input", cut);
</script></body></html>"""


def show(st, before: np.ndarray, after: np.ndarray, *, width: int = 700, **labels) -> None:
    """Draw the before/after view in ``st`` (the page or a container) at ``width`` CSS pixels, its height
    following the image's aspect ratio."""
    height, image_width = after.shape[:2]
    shown_width = min(width, image_width)
    st.iframe(page(before, after, **labels), width=shown_width, height=int(shown_width * height / image_width) + 8)
