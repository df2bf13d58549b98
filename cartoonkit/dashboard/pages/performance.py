"""The Performance page as Streamlit runs it (st.Page needs a file): cartoonkit.dashboard.performance_page."""

import streamlit as st

from cartoonkit.dashboard import common, performance_page

performance_page.render(st, common.current_settings(st))
