"""The files st.Page runs, one per dashboard page (a package so that a wheel install ships them)."""
