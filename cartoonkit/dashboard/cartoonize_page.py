"""Cartoonize page: upload photos (or use the sample portraits), see before/after, download, stage times."""

from __future__ import annotations

from . import common

OUTCOMES_KEY = "cartoonize_outcomes"


def render(st, settings: common.Settings) -> None:
    st.title("Cartoonize")
    uploads = st.file_uploader("Photos", type=None, accept_multiple_files=True, key="uploads",
                               help=f"Any image file, up to {common.MAX_UPLOAD_MB} MB each")
    use_samples = st.checkbox("Use sample portraits", key="use_samples")
    if st.button("Cartoonize", key="run", type="primary"):
        files = [(f.name, f.getvalue()) for f in uploads or []]
        if use_samples:
            files += common.sample_files()
        if not files:
            st.warning("Upload photos or tick 'Use sample portraits' first.")
            st.session_state[OUTCOMES_KEY] = []
        else:
            try:
                with st.spinner(f"Cartoonizing {len(files)} photo(s)..."):
                    st.session_state[OUTCOMES_KEY] = common.process_uploads(files, settings)
            except Exception as exc:  # a bad setting or a missing model: say so, keep the page alive
                st.error(str(exc))
                st.session_state[OUTCOMES_KEY] = []
    for index, outcome in enumerate(st.session_state.get(OUTCOMES_KEY, [])):
        show_outcome(st, outcome, index)


def show_outcome(st, outcome: common.Outcome, index: int) -> None:
    st.subheader(outcome.name)
    if outcome.error:
        st.error(outcome.error)
        return
    before, after = st.columns(2)
    height, width = outcome.after.shape[:2]
    before.image(outcome.before, caption="before")
    after.image(outcome.after, caption=f"after ({width}x{height})")
    st.download_button(f"Download {outcome.file_name}", outcome.data, file_name=outcome.file_name,
                       mime=_MIME.get(outcome.file_name.rsplit(".", 1)[-1], "application/octet-stream"),
                       key=f"download_{index}")
    st.caption(common.format_timings(outcome.timings))
    for note in outcome.notes:
        st.info(note)


_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
