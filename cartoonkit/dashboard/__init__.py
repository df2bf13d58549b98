"""The Streamlit dashboard: one module per page, shared helpers in :mod:`.common`.

Run it with ``make run`` (or ``streamlit run streamlit_app.py``).
"""

from .common import Outcome, Settings, process_uploads

PAGES = ("Cartoonize", "Compare", "Performance")

__all__ = ["PAGES", "Outcome", "Settings", "main", "process_uploads"]


def main() -> None:
    """Draw the app: the page picker and settings in the sidebar, then the chosen page."""
    import streamlit as st

    from . import cartoonize_page, common, compare_page, performance_page

    st.set_page_config(page_title="cartoonkit", layout="wide")
    page = st.sidebar.radio("Page", PAGES, key="page")
    settings = common.sidebar(st)
    {"Cartoonize": cartoonize_page.render, "Compare": compare_page.render,
     "Performance": performance_page.render}[page](st, settings)
