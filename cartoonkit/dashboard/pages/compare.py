"""The Compare page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.compare_page."""

import streamlit as st

from cartoonkit.dashboard import common, compare_page

compare_page.render(st, common.current_settings(st))
