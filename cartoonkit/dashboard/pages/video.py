"""The Video page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.video_page."""

import streamlit as st

from cartoonkit.dashboard import common, video_page

video_page.render(st, common.current_settings(st))
