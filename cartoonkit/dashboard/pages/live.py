"""The Live page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.live_page."""

import streamlit as st

from cartoonkit.dashboard import common, live_page

live_page.render(st, common.current_settings(st))
