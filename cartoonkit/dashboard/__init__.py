"""The Streamlit dashboard: one module per page, shared helpers in :mod:`.common`, long work in :mod:`.jobs`.

Run it with ``make run`` (or ``streamlit run streamlit_app.py``). Navigation is Streamlit's own multipage API
(``st.navigation`` over ``st.Page``), so each page has its own URL (``/``, ``/live``, ``/batch``,
``/video``, ``/compare``, ``/gallery``, ``/performance``); ``pages/`` holds the small files Streamlit runs
for each, which call the page modules.
"""

from __future__ import annotations

from pathlib import Path

from .common import Outcome, Settings, process_uploads

PAGES = {"Cartoonize": "cartoonize", "Live": "live", "Batch": "batch", "Video": "video", "Compare": "compare",
         "Gallery": "gallery", "Performance": "performance"}
"""Page title -> its file in ``pages/`` and its URL path (the first page is the landing page, at ``/``)."""
PAGES_DIR = Path(__file__).parent / "pages"

__all__ = ["PAGES", "Outcome", "Settings", "main", "page_file", "process_uploads"]


def page_file(title: str) -> Path:
    """The file Streamlit runs for the page called ``title``."""
    return PAGES_DIR / f"{PAGES[title]}.py"


def main() -> None:
    """Draw the app: the password gate if one is set, else the navigation, the settings in the sidebar and the page."""
    import streamlit as st

    from ..config import CartoonConfig
    from . import common, gate, share, warm

    st.set_page_config(page_title="cartoonkit", layout="wide")
    if not gate.unlocked(st):
        return  # nothing else drawn: no navigation, no sidebar, no page
    pages = [st.Page(page_file(title), title=title, url_path=slug, default=index == 0)
             for index, (title, slug) in enumerate(PAGES.items())]
    page = st.navigation(pages)
    # Once per server process (see warm.py); each shape waits until no session is using the engine.
    warm.start(CartoonConfig().resolution, between=common.ENGINE_QUEUE.wait_until_quiet)
    for problem in share.apply_link(st.query_params, st.session_state, common.model_choices()):
        st.warning(problem)
    settings = common.sidebar(st)
    share.write_link(st.query_params, settings.flat(), common.DEFAULT_MODEL)   # the URL now opens these settings
    common.remember_settings(st, settings)
    page.run()
