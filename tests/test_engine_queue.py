"""The shared engine's queue: turns in the order asked (sessions interleave), places and estimates, leaving the
queue, and a time limit that does not count the wait (no Streamlit, no model: threads and a fake clock)."""

from __future__ import annotations

import threading
import time

import pytest

from cartoonkit.dashboard import jobs
from cartoonkit.dashboard.engine_queue import EngineQueue, Place


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def wait_until(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_sessions_asking_photo_by_photo_interleave_in_the_order_they_asked():
    """Four sessions of three photos each, all asking while another holds the engine: the turns go round the
    sessions (a plain Lock lets a session that just released it take it straight back)."""
    queue, order, gate = EngineQueue(), [], threading.Event()

    def session(name: str) -> None:
        for _ in range(3):
            with queue.turn(owner=name):
                order.append(name)
                if not gate.is_set():
                    gate.wait(10)   # the first turn holds the engine until every session is queued

    threads = [threading.Thread(target=session, args=(name,)) for name in "abcd"]
    threads[0].start()
    wait_until(lambda: order == ["a"])
    for index, thread in enumerate(threads[1:], start=1):
        thread.start()
        wait_until(lambda index=index: len(queue._waiting) == index)   # b, c, d queue up in this order
    gate.set()
    for thread in threads:
        thread.join(10)
    assert order == list("abcd" * 3)


def test_a_waiting_request_sees_its_place_and_an_estimate_from_measured_turns():
    clock = FakeClock()
    queue = EngineQueue(clock=clock)
    with queue.turn(owner="first"):
        clock.advance(4.0)          # one measured turn of 4 s: the estimates' unit
    places: list[Place] = []
    release, holding = threading.Event(), threading.Event()

    def hold(owner: str) -> None:
        with queue.turn(owner=owner):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold, args=("a",))
    holder.start()
    assert holding.wait(10)
    clock.advance(1.0)              # the running turn is 1 s in: about 3 s left of it
    queued = threading.Thread(target=lambda: queue.turn(owner="b").__enter__())   # queued behind a, never run
    queued.start()
    wait_until(lambda: queue.place("b") is not None)

    def watch(place: Place) -> None:
        places.append(place)
        release.set()               # let the turns go on once we have seen where we stand

    with queue.turn(owner="c", on_wait=watch) as waited:
        pass
    first = places[0]
    assert (first.ahead, first.sessions, first.wait_s, first.turn_s) == (2, 3, pytest.approx(7.0), 4.0)
    assert first.describe(remaining=3) == ("In the queue for the shared model: 2 requests ahead of yours, your next "
                                           "one starts in about 7 s; all 3 photos left in about 43 s.")
    assert waited >= 0 and not queue.busy()
    holder.join(10)
    queued.join(10)


def test_an_exception_while_waiting_leaves_the_queue_and_the_next_request_goes_on():
    queue, holding, release = EngineQueue(), threading.Event(), threading.Event()

    def hold() -> None:
        with queue.turn(owner="a"):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)

    def stop(place: Place) -> None:
        raise jobs.ItemAbandoned("stopped")

    with pytest.raises(jobs.ItemAbandoned):
        with queue.turn(owner="b", on_wait=stop):
            pytest.fail("a request that left must not get its turn")
    assert queue.place("b") is None
    release.set()
    holder.join(10)
    with queue.turn(owner="c", on_wait=lambda place: pytest.fail("nobody is ahead")):
        pass
    with queue:                      # the plain context manager is the same queue
        assert queue.busy()
    assert not queue.busy()


def test_the_time_limit_counts_a_jobs_own_work_not_its_wait_for_other_sessions():
    """Each photo takes 30 s and the limit is 100 s; another session holds the engine for 500 s first. Counting
    the wait would stop this job after its first photo; its own work is 120 s, so the fourth photo is the one the
    limit stops (checked between photos, as before)."""
    clock = FakeClock()
    queue, holding, release = EngineQueue(clock=clock), threading.Event(), threading.Event()

    def other_session() -> None:
        with queue.turn(owner="other"):
            holding.set()
            release.wait(10)
            clock.advance(500)

    other = threading.Thread(target=other_session)
    other.start()
    assert holding.wait(10)
    job = jobs.Job(total=5, limit_s=100)

    def photo(item: int) -> int:
        with queue.turn(owner=job, on_wait=lambda place: release.set()) as waited:
            job.deadline.waited_s += waited
            clock.advance(30)
            return item

    jobs.run_with_limit(job, [1, 2, 3, 4, 5], photo, clock=clock)
    other.join(10)
    assert job.results == [1, 2, 3, 4] and job.state == "time_limit"
    assert (job.elapsed_s, job.waited_s, job.used_s) == (620, 500, 120)
    assert job.message("photos") == ("Stopped after 120 s of work (time limit 100 s, set in the sidebar; 500 s waiting "
                                     "for other sessions not counted): 4 of 5 photos done; the finished ones are "
                                     "below.")


def test_checkpoints_end_an_item_inside_its_work_but_never_the_first():
    clock = FakeClock()
    steps: list[str] = []

    def photo(item: int) -> int:
        clock.advance(60)           # decoding: past the 100 s limit during the second photo
        steps.append(f"{item} decoded")
        jobs.checkpoint()
        steps.append(f"{item} network")
        return item

    job = jobs.run_with_limit(jobs.Job(total=3, limit_s=100), [1, 2, 3], photo, clock=clock)
    assert job.results == [1] and job.state == "time_limit"
    assert steps == ["1 decoded", "1 network", "2 decoded"]
    short = jobs.run_with_limit(jobs.Job(total=2, limit_s=10), [1, 2], photo, clock=clock)
    assert short.results == [1] and short.state == "time_limit"   # the first went past 10 s and still finished

    stopping = jobs.Job(total=2)

    def stopped_mid_photo(item: int) -> int:
        stopping.cancel.set()       # the Stop button, while this photo decodes
        jobs.checkpoint()
        return item

    jobs.run_with_limit(stopping, [1, 2], stopped_mid_photo, clock=clock)
    assert stopping.results == [] and stopping.state == "stopped"
    jobs.checkpoint()               # outside a job: nothing to stop


def test_the_idle_callback_runs_once_after_work_ends():
    released = threading.Event()
    calls: list[float] = []
    queue = EngineQueue(on_idle=lambda: (calls.append(time.monotonic()), released.set()), idle_release_s=0.05)
    for _ in range(3):
        with queue.turn():
            pass
    assert released.wait(10)
    time.sleep(0.3)
    assert len(calls) == 1
    with queue:
        pass
    wait_until(lambda: len(calls) == 2)
