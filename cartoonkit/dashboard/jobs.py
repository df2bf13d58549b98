"""Long dashboard work, one item (file or grid cell) at a time: progress, a time limit and a stop flag (no Streamlit).

Streamlit reruns the whole script when anyone clicks, and by default (``runner.fastReruns``) starts the new run
at once while the old one is told to stop at its next Streamlit call. So the work is cooperative: a ``Job`` lives
in ``st.session_state``, results land in it as each item finishes, the loop checks the job's ``cancel`` flag and
its time limit between items, and the next run can wait for ``finished`` before showing what was done. Inside an
item, :func:`checkpoint` (called between its steps: after decoding, before encoding) ends it early the same way.

The time limit counts the job's own time: its wall time less the time it waited in the queue for the shared engine
behind other sessions (:attr:`Deadline.waited_s`), so a request is never stopped for waiting.
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
    """``limit_s`` seconds of use from ``start`` on ``clock``; time added to ``waited_s`` (waiting for the shared
    engine behind other sessions) is not use."""

    limit_s: float
    clock: Callable[[], float] = field(default_factory=lambda: CLOCK)
    start: float | None = None
    waited_s: float = 0.0

    def __post_init__(self) -> None:
        if self.start is None:
            self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def used(self) -> float:
        return self.elapsed() - self.waited_s

    def passed(self) -> bool:
        return self.used() >= self.limit_s


class ItemAbandoned(Exception):  # noqa: N818 (not an error: the job was asked to end)
    """Raised inside an item's work when its job must end before the item is done; the item gives no result.
    ``state`` is why: "stopped" (the Stop button or a rerun) or "time_limit"."""

    def __init__(self, state: str):
        super().__init__(state)
        self.state = state


@dataclass
class Job:
    """One request's work as seen across Streamlit reruns; ``results`` grows as items finish."""

    total: int
    settings: Any = None          # what the results were made with (stale-result warnings compare against it)
    results: list = field(default_factory=list)
    state: str = "running"        # running | done | stopped | time_limit | interrupted | failed
    elapsed_s: float = 0.0        # wall time from the start
    used_s: float = 0.0           # what the time limit counts: elapsed_s less waited_s
    waited_s: float = 0.0         # time spent queued for the shared engine behind other sessions
    limit_s: float = DEFAULT_TIME_LIMIT_S
    error: str = ""
    labels: list[str] = field(default_factory=list)  # one per item, for progress text and reports
    meta: Any = None              # whatever else the page needs to show the results (Compare: the grid's shape)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    deadline: Deadline | None = field(default=None, repr=False)   # set while run_with_limit runs it

    @property
    def done(self) -> int:
        return len(self.results)

    def message(self, unit: str = "files") -> str:
        """What to tell the user when the job did not finish by itself ("" when it did)."""
        counts = f"{self.done} of {self.total} {unit} done"
        if self.state == "time_limit":
            waited = f"; {self.waited_s:.0f} s waiting for other sessions not counted" if self.waited_s >= 0.5 else ""
            return (f"Stopped after {self.used_s:.0f} s of work (time limit {self.limit_s:g} s, set in the sidebar"
                    f"{waited}): {counts}; the finished ones are below.")
        if self.state == "stopped":
            return f"Stopped by you after {self.elapsed_s:.0f} s: {counts}; the finished ones are below."
        if self.state == "interrupted":
            return f"Interrupted by a change on the page: {counts}; the finished ones are below."
        if self.state == "failed":
            return f"{self.error} ({counts})"
        return ""


_current = threading.local()
"""The job that :func:`run_with_limit` is running in this thread, for :func:`checkpoint`."""


def checkpoint() -> None:
    """Between the steps of an item's work: raise :class:`ItemAbandoned` when the job running in this thread has
    been stopped, or has used up its time limit and this is not its first item (the first always finishes, so a
    limit shorter than one item still gives a result). Outside a job (the API, tests) it does nothing."""
    job = getattr(_current, "job", None)
    if job is None:
        return
    if job.cancel.is_set():
        raise ItemAbandoned("stopped")
    if job.results and job.deadline is not None and job.deadline.passed():
        raise ItemAbandoned("time_limit")


def run_with_limit(job: Job, items: Iterable, fn: Callable[[Any], Any],
                   on_progress: Callable[[Job, Any], None] | None = None,
                   clock: Callable[[], float] | None = None) -> Job:
    """Call ``fn`` on each item, appending to ``job.results``; between items stop on ``job.cancel`` or the limit.

    The first item always runs, so a limit shorter than one item still gives a result. ``fn`` may end an item
    early by raising :class:`ItemAbandoned` (see :func:`checkpoint`), and may add the time it waited for the shared
    engine to ``job.deadline.waited_s``, which the limit does not count. ``on_progress(job, item)`` is called after
    each item (a Streamlit progress bar: the point where Streamlit may stop this run). The job's ``finished`` event
    is set however this ends, so that a later run can wait for the results to settle.
    """
    deadline = job.deadline = Deadline(job.limit_s, clock or CLOCK)
    _current.job = job
    try:
        for item in items:
            if job.cancel.is_set():
                job.state = "stopped"
                break
            if job.results and deadline.passed():
                job.state = "time_limit"
                break
            job.results.append(fn(item))
            _note_times(job, deadline)
            if on_progress is not None:
                on_progress(job, item)
        else:
            job.state = "done"
    except ItemAbandoned as abandoned:  # stopped while waiting for its turn or between the steps of an item
        job.state = abandoned.state
    except Exception as exc:  # a bug or a missing model: keep what was done, say what broke
        job.state, job.error = "failed", str(exc) or type(exc).__name__
    finally:
        _current.job = None
        _note_times(job, deadline)
        job.finished.set()
    return job


def _note_times(job: Job, deadline: Deadline) -> None:
    job.elapsed_s, job.waited_s, job.used_s = deadline.elapsed(), deadline.waited_s, deadline.used()


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
