"""The Cartoonize page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.cartoonize_page."""

import streamlit as st

from cartoonkit.dashboard import cartoonize_page, common

cartoonize_page.render(st, common.current_settings(st))
