"""Long dashboard work, one item (file or grid cell) at a time: progress, a time limit and a stop flag (no Streamlit).

Streamlit reruns the whole script when anyone clicks, and by default (``runner.fastReruns``) starts the new run
at once while the old one is told to stop at its next Streamlit call. So the work is cooperative: a ``Job`` lives
in ``st.session_state``, results land in it as each item finishes, the loop checks the job's ``cancel`` flag and
its time limit between items, and the next run can wait for ``finished`` before showing what was done.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

TIME_LIMIT_ENV = "CARTOONKIT_DASHBOARD_TIME_LIMIT"
DEFAULT_TIME_LIMIT_S = 120.0
MIN_TIME_LIMIT_S, MAX_TIME_LIMIT_S = 1.0, 3600.0  # the sidebar's bounds
CLOCK: Callable[[], float] = time.monotonic
"""Module-level so that tests can put a fake clock here (also under the AppTest-driven app)."""


def default_time_limit(environ: dict | None = None) -> float:
    """``CARTOONKIT_DASHBOARD_TIME_LIMIT`` in seconds when it is a positive number (kept within the sidebar's
    1 s to 1 h), else 120."""
    value = (os.environ if environ is None else environ).get(TIME_LIMIT_ENV, "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_TIME_LIMIT_S
    if not 0 < seconds < float("inf"):
        return DEFAULT_TIME_LIMIT_S
    return min(max(seconds, MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)


@dataclass
class Deadline:
    """``limit_s`` seconds from ``start`` on ``clock``."""

    limit_s: float
    clock: Callable[[], float] = field(default_factory=lambda: CLOCK)
    start: float | None = None

    def __post_init__(self) -> None:
        if self.start is None:
            self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def passed(self) -> bool:
        return self.elapsed() >= self.limit_s


@dataclass
class Job:
    """One request's work as seen across Streamlit reruns; ``results`` grows as items finish."""

    total: int
    settings: Any = None          # what the results were made with (stale-result warnings compare against it)
    results: list = field(default_factory=list)
    state: str = "running"        # running | done | stopped | time_limit | interrupted | failed
    elapsed_s: float = 0.0
    limit_s: float = DEFAULT_TIME_LIMIT_S
    error: str = ""
    labels: list[str] = field(default_factory=list)  # one per item, for progress text and reports
    meta: Any = None              # whatever else the page needs to show the results (Compare: the grid's shape)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> int:
        return len(self.results)

    def message(self, unit: str = "files") -> str:
        """What to tell the user when the job did not finish by itself ("" when it did)."""
        counts = f"{self.done} of {self.total} {unit} done"
        if self.state == "time_limit":
            return (f"Stopped after {self.elapsed_s:.0f} s (time limit {self.limit_s:g} s, set in the sidebar): "
                    f"{counts}; the finished ones are below.")
        if self.state == "stopped":
            return f"Stopped by you after {self.elapsed_s:.0f} s: {counts}; the finished ones are below."
        if self.state == "interrupted":
            return f"Interrupted by a change on the page: {counts}; the finished ones are below."
        if self.state == "failed":
            return f"{self.error} ({counts})"
        return ""


def run_with_limit(job: Job, items: Iterable, fn: Callable[[Any], Any],
                   on_progress: Callable[[Job, Any], None] | None = None,
                   clock: Callable[[], float] | None = None) -> Job:
    """Call ``fn`` on each item, appending to ``job.results``; between items stop on ``job.cancel`` or the limit.

    The first item always runs, so a limit shorter than one item still gives a result. ``on_progress(job, item)``
    is called after each item (a Streamlit progress bar: the point where Streamlit may stop this run). The job's
    ``finished`` event is set however this ends, so that a later run can wait for the results to settle.
    """
    deadline = Deadline(job.limit_s, clock or CLOCK)
    try:
        for item in items:
            if job.cancel.is_set():
                job.state = "stopped"
                break
            if job.results and deadline.passed():
                job.state = "time_limit"
                break
            job.results.append(fn(item))
            job.elapsed_s = deadline.elapsed()
            if on_progress is not None:
                on_progress(job, item)
        else:
            job.state = "done"
    except Exception as exc:  # a bug or a missing model: keep what was done, say what broke
        job.state, job.error = "failed", str(exc) or type(exc).__name__
    finally:
        job.elapsed_s = deadline.elapsed()
        job.finished.set()
    return job


def settle(job: Job | None, stop_clicked: bool, wait_s: float = 600.0) -> None:
    """At the start of a run: a job still "running" belongs to an earlier run that this rerun is replacing.

    Ask it to stop, wait until it has (its current item finishes first), and record why it ended.
    """
    if job is None or job.state != "running":
        return
    job.cancel.set()
    job.finished.wait(wait_s)
    if job.state in ("time_limit", "failed"):
        return
    if job.done >= job.total:
        job.state = "done"
    else:
        job.state = "stopped" if stop_clicked else "interrupted"
