"""The Batch page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.batch_page."""

import streamlit as st

from cartoonkit.dashboard import batch_page, common

batch_page.render(st, common.current_settings(st))
