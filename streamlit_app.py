"""The cartoonkit dashboard: ``make run`` or ``streamlit run streamlit_app.py``; pages are in cartoonkit/dashboard/."""

from cartoonkit.dashboard import main

main()
