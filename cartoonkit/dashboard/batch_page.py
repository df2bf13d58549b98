"""Batch page: many photos in, a progress bar, one zip of the cartoons (plus report.json) and a per-file report out.

The zip and the report are built by plain functions, testable without Streamlit.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePath

from ..run_options import FolderOptions
from . import cartoonize_page, common, jobs

JOB_KEY = "batch_job"
ZIP_KEY = "batch_zip"  # (the job it was built from, zip bytes)
REPORT_NAME = "report.json"


def unique_names(file_names: list[str]) -> list[str]:
    """``photo.png, photo.png, photo-2.png`` -> ``photo.png, photo-2.png, photo-2-2.png``: no two alike, ignoring
    case (zips get unpacked on case-insensitive file systems too)."""
    used: set[str] = set()
    names = []
    for name in file_names:
        path = PurePath(PurePath(name).name or "image")  # no folders from an upload's name inside the zip
        candidate, n = path.name, 1
        while candidate.lower() in used or candidate.lower() == REPORT_NAME:
            n += 1
            candidate = f"{path.stem}-{n}{path.suffix}"
        used.add(candidate.lower())
        names.append(candidate)
    return names


def report_rows(job: jobs.Job) -> list[dict]:
    """One row per file of the job: file, status (done / failed / not run), reason, ms, name in the zip."""
    done = [o for o in job.results if o.error is None]
    zip_names = iter(unique_names([o.file_name for o in done]))
    rows = []
    for outcome in job.results:
        ok = outcome.error is None
        rows.append({"file": outcome.name, "status": "done" if ok else "failed", "reason": outcome.error or "",
                     "ms": round(outcome.seconds * 1000), "output": next(zip_names) if ok else ""})
    reason = {"time_limit": "time limit reached", "stopped": "stopped by you",
              "interrupted": "interrupted", "failed": job.error}.get(job.state, "")
    for name in job.labels[len(job.results):]:
        rows.append({"file": name, "status": "not run", "reason": reason, "ms": 0, "output": ""})
    return rows


def report(job: jobs.Job) -> dict:
    """What report.json holds: the settings, how the job ended, and the per-file rows."""
    rows = report_rows(job)
    settings = {**job.settings.flat(), "time_limit_s": job.settings.time_limit_s} if job.settings is not None else None
    return {"settings": settings, "state": job.state,
            "message": job.message("files"), "elapsed_s": round(job.elapsed_s, 3),
            "done": sum(r["status"] == "done" for r in rows), "failed": sum(r["status"] == "failed" for r in rows),
            "not_run": sum(r["status"] == "not run" for r in rows), "files": rows}


def build_zip(job: jobs.Job) -> bytes:
    """The finished cartoons under their report names, plus ``report.json``; built in memory."""
    summary = report(job)
    data = iter(o.data for o in job.results if o.error is None)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for row in summary["files"]:
            if row["status"] == "done":  # images are compressed already: stored, not deflated
                archive.writestr(row["output"], next(data), compress_type=zipfile.ZIP_STORED)
        archive.writestr(REPORT_NAME, json.dumps(summary, indent=2) + "\n", compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def render(st, settings: common.Settings) -> None:
    st.title("Batch")
    # The folder run's options that mean something for uploads, from their declarations (FolderOptions).
    chosen = common.draw_settings(st, FolderOptions, {}, state=st.session_state, only=("batch_size",),
                                  key_prefix="batch_")
    files = common.photo_request(st, JOB_KEY, "Cartoonize all", key_prefix="batch_",
                                 help=f"Any number of photos: {common.UPLOAD_HELP}")
    if files is not None:
        cartoonize_page.start(st, JOB_KEY, files, settings, keep_images=False, page="Batch",
                              batch_size=FolderOptions(**chosen).batch_size)
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    common.show_job_state(st, job, settings, "Cartoonize all")
    built = st.session_state.get(ZIP_KEY)
    if built is None or built[0] is not job:  # once per job, also after a rerun that stopped it
        built = st.session_state[ZIP_KEY] = (job, build_zip(job))
    rows = report_rows(job)
    done = sum(r["status"] == "done" for r in rows)
    st.subheader(f"{done} of {job.total} done")
    st.download_button(f"Download {done} cartoon(s) and report.json (zip)", built[1], file_name="cartoons.zip",
                       mime="application/zip", key="batch_download")
    for row in rows:
        if row["status"] == "failed":
            st.error(row["reason"])
    st.dataframe(rows, hide_index=True)
