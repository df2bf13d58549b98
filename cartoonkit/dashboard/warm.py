"""The dashboard's background int8 warm-up: what ``cartoonkit warmup`` does, started once per server process.

Why: ``auto`` picks int8 (the fastest engine that keeps 44 dB) only once its packages are in the compiled cache,
and a stakeholder who opens the dashboard will not run a command first. The warm-up compiles the common shapes
at the default resolution in a daemon thread (10-30 s a shape on a laptop CPU, 7 shapes) while the pages stay
usable on the engine ``auto`` picks meanwhile; when it is done, :func:`~cartoonkit.dashboard.common.load_cartoonizer`
hands out int8 engines, because whether int8 is prepared is part of its cache key.

Nothing starts where int8 cannot run (not x86 with VNNI/AMX, no torchao), where it is already prepared, or when
``CARTOONKIT_DASHBOARD_WARMUP=0`` (the tests set it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WARMUP_ENV = "CARTOONKIT_DASHBOARD_WARMUP"


@dataclass
class WarmupStatus:
    """What the background warm-up is doing; read by the sidebar, written by the warm-up thread."""

    state: str = "not started"   # not started | not needed | not available | disabled | running | done | failed
    done: int = 0
    total: int = 0
    message: str = ""
    started: float = field(default_factory=time.time)

    def line(self) -> str:
        """One sentence for the sidebar, or ``""`` when there is nothing worth saying."""
        if self.state == "running":
            return (f"Preparing int8 in the background: {self.done} of {self.total} shapes compiled; "
                    "precision auto picks int8 once it is done.")
        if self.state == "done":
            return f"int8 prepared in the background ({self.total} shapes): auto now uses int8."
        if self.state == "failed":
            return f"The background int8 warm-up failed ({self.message}); auto does not pick int8."
        return ""


_STATUS = WarmupStatus()
_LOCK = threading.Lock()
_THREAD: threading.Thread | None = None


def status() -> WarmupStatus:
    return _STATUS


def _default_prepare(resolution: int, report: Callable[[int, int], None]) -> None:
    """Compile the int8 packages of :func:`cartoonkit.warmup.common_shapes` at ``resolution``, then mark them."""
    from ..compile_cache import mark_int8_ready
    from ..pipeline import Cartoonizer
    from ..warmup import common_shapes, warm_up

    cartoonizer = Cartoonizer.from_pretrained(device="cpu", precision="int8")
    shapes = common_shapes(resolution, cartoonizer.engine.bucket)
    report(0, len(shapes))
    warmed = warm_up(cartoonizer, [resolution], lambda _: report(_STATUS.done + 1, len(shapes)))
    mark_int8_ready([w.shape for w in warmed])


def start(resolution: int, prepare: Callable[[int, Callable[[int, int], None]], None] | None = None,
          between: Callable[[], None] | None = None) -> WarmupStatus:
    """Start the warm-up thread if it is wanted and not started yet in this process; return the status.

    ``prepare(resolution, report)`` does the work (default: compile and mark, as ``cartoonkit warmup``);
    ``report(done, total)`` updates the status. ``between()`` is called before each shape is compiled: the
    dashboard waits there until no session has used the engine for a moment, so that people's photos come first
    (a shape already compiling finishes, 10-30 s).
    """
    global _THREAD
    with _LOCK:
        if _THREAD is not None or _STATUS.state not in ("not started", "disabled"):
            return _STATUS
        if os.environ.get(WARMUP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            _STATUS.state = "disabled"
            return _STATUS
        from ..options import int8_available, int8_prepared

        if not int8_available():
            _STATUS.state = "not available"
            return _STATUS
        if int8_prepared():
            _STATUS.state = "not needed"
            return _STATUS

        def report(done: int, total: int) -> None:
            _STATUS.done, _STATUS.total = done, total
            if between is not None and done < total:
                between()

        def work() -> None:
            try:
                (prepare or _default_prepare)(resolution, report)
                _STATUS.state = "done"
                from ..runtime import release_freed_memory

                release_freed_memory()   # the compiler's working memory: no session's work will reuse it
            except Exception as exc:  # noqa: BLE001 (a failed warm-up must never take the dashboard down)
                _STATUS.state, _STATUS.message = "failed", f"{type(exc).__name__}: {exc}"

        _STATUS.state = "running"
        _THREAD = threading.Thread(target=work, name="cartoonkit-int8-warmup", daemon=True)
        _THREAD.start()
        return _STATUS


def _reset_for_tests() -> None:
    global _THREAD, _STATUS
    with _LOCK:
        _THREAD = None
        _STATUS = WarmupStatus()
