"""The Streamlit dashboard: one module per page, shared helpers in :mod:`.common`, long work in :mod:`.jobs`.

Run it with ``make run`` (or ``streamlit run streamlit_app.py``).
"""

from .common import Outcome, Settings, process_uploads

PAGES = ("Cartoonize", "Batch", "Compare", "Performance")

__all__ = ["PAGES", "Outcome", "Settings", "main", "process_uploads"]


def main() -> None:
    """Draw the app: the password gate if one is set, the page picker and settings in the sidebar, then the page."""
    import streamlit as st

    from . import batch_page, cartoonize_page, common, compare_page, gate, performance_page

    st.set_page_config(page_title="cartoonkit", layout="wide")
    if not gate.unlocked(st):
        return  # nothing else drawn: no sidebar, no page
    page = st.sidebar.radio("Page", PAGES, key="page")
    settings = common.sidebar(st)
    {"Cartoonize": cartoonize_page.render, "Batch": batch_page.render, "Compare": compare_page.render,
     "Performance": performance_page.render}[page](st, settings)
