"""The dashboard's background int8 warm-up: when it starts, what it reports, and that auto follows it."""

from __future__ import annotations

import platform
import threading

import pytest

from cartoonkit.dashboard import warm
from cartoonkit.options import EngineOptions

x86_int8 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="int8 is x86 only")


@pytest.fixture()
def fresh(monkeypatch, tmp_path):
    """A clean warm-up state and an empty compiled cache of its own (the mark must not reach other tests)."""
    monkeypatch.setenv("CARTOONKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(warm.WARMUP_ENV, "1")
    warm._reset_for_tests()
    yield
    if warm._THREAD is not None:
        warm._THREAD.join(timeout=30)
    warm._reset_for_tests()


def test_disabled_by_the_environment_starts_nothing(fresh, monkeypatch):
    monkeypatch.setenv(warm.WARMUP_ENV, "0")
    called = []
    assert warm.start(512, lambda resolution, report: called.append(resolution)).state == "disabled"
    assert warm._THREAD is None and not called


def test_not_available_without_int8_hardware(fresh, monkeypatch):
    monkeypatch.setattr("cartoonkit.options.cpu_supports_fast_int8", lambda flags=None: False)
    assert warm.start(512, lambda resolution, report: None).state == "not available"
    assert warm._THREAD is None


@x86_int8
def test_runs_once_reports_progress_and_then_auto_picks_int8(fresh, monkeypatch):
    from cartoonkit.compile_cache import mark_int8_ready
    from cartoonkit.dashboard import common
    from cartoonkit.options import int8_prepared

    monkeypatch.setattr("cartoonkit.options.cpu_supports_fast_int8", lambda flags=None: True)
    release, seen = threading.Event(), []

    def prepare(resolution, report):
        seen.append(resolution)
        report(0, 2)
        report(1, 2)
        release.wait(10)
        report(2, 2)
        mark_int8_ready([(64, 64), (64, 128)])   # what the real warm-up writes when it is done

    before = common.load_cartoonizer("whitebox", EngineOptions())
    status = warm.start(64, prepare)
    assert status.state == "running"                      # the thread waits for `release`
    for _ in range(200):
        if status.done == 1:
            break
        threading.Event().wait(0.05)
    assert "1 of 2 shapes compiled" in status.line()
    assert warm.start(64, prepare) is status            # a second page load does not start another
    release.set()
    warm._THREAD.join(timeout=10)
    assert seen == [64]
    assert warm.status().state == "done" and "auto now uses int8" in warm.status().line()
    assert int8_prepared()
    after = common.load_cartoonizer("whitebox", EngineOptions())
    assert before.engine.precision != "int8" and after.engine.precision == "int8"
    assert warm.start(64, prepare).state == "done"      # nothing more to do in this process


@x86_int8
def test_a_failed_warm_up_is_reported_not_raised(fresh, monkeypatch):
    monkeypatch.setattr("cartoonkit.options.cpu_supports_fast_int8", lambda flags=None: True)

    def prepare(resolution, report):
        raise RuntimeError("compiler missing")

    warm.start(64, prepare)
    warm._THREAD.join(timeout=10)
    assert warm.status().state == "failed"
    assert "compiler missing" in warm.status().line()


def test_already_prepared_needs_nothing(fresh, monkeypatch):
    monkeypatch.setattr("cartoonkit.options.int8_available", lambda: True)
    monkeypatch.setattr("cartoonkit.options.int8_prepared", lambda: True)
    assert warm.start(64, lambda resolution, report: None).state == "not needed"


def test_each_shape_waits_until_no_session_is_using_the_engine(fresh, monkeypatch):
    """While a session holds the shared engine, the warm-up compiles nothing more; it goes on once the engine has been
    quiet (the dashboard passes its queue's wait_until_quiet as ``between``)."""
    from cartoonkit.dashboard.engine_queue import EngineQueue

    monkeypatch.setattr("cartoonkit.options.int8_available", lambda: True)
    monkeypatch.setattr("cartoonkit.options.int8_prepared", lambda: False)
    queue, compiled = EngineQueue(), []
    session_done = threading.Event()

    def prepare(resolution, report):
        report(0, 2)
        compiled.append(("shape 1", session_done.is_set()))
        report(1, 2)
        compiled.append(("shape 2", session_done.is_set()))
        report(2, 2)

    with queue:   # a session's photo is being cartoonized when the warm-up starts
        warm.start(64, prepare, between=lambda: queue.wait_until_quiet(0.05))
        threading.Event().wait(0.3)
        assert compiled == []
        session_done.set()
    warm._THREAD.join(timeout=10)
    assert compiled == [("shape 1", True), ("shape 2", True)] and warm.status().state == "done"
