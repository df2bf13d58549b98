"""The Gallery page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.gallery_page."""

import streamlit as st

from cartoonkit.dashboard import common, gallery_page

gallery_page.render(st, common.current_settings(st))
