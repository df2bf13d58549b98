"""Turns on the shared engine, first come, first served: how several browser sessions share one model (no Streamlit).

Every session runs in its own thread and asks for the engine once per photo (or per group of photos). A plain
``threading.Lock`` gives no order: the session that has just released it usually takes it straight back while the
others keep waiting, so one session finishes first and the last one waits for all the others' photos. Here each
request takes a ticket and tickets are served in the order they were taken; a session asking for its next photo
queues behind everyone already waiting, so four sessions' photos interleave 1, 2, 3, 4, 1, 2, 3, 4.

While it waits, a request can see its place (:class:`Place`: turns ahead, an estimate from the measured length of
recent turns) and leave the queue: ``on_wait`` is called every ``poll_s`` seconds without the queue's lock held,
and whatever it raises (a stopped run, Streamlit's own stop) takes the ticket out of the queue on its way up.
The queue also measures each request's wait, so that a time limit can count only the time a request used.

When the engine has been idle for :data:`IDLE_RELEASE_S`, the queue calls ``on_idle`` once (the dashboard gives
back to the operating system the memory the finished work freed: see :func:`cartoonkit.runtime.release_freed_memory`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

IDLE_RELEASE_S = 2.0
"""Seconds without a turn before ``on_idle`` runs: long enough that a session drawing its last photo and asking for
the next one does not count as idle (releasing memory between photos would make the next one fault it back in)."""
MEAN_WEIGHT = 0.3
"""Weight of the newest turn in the moving average of a turn's length that the estimates use."""


@dataclass(frozen=True)
class Place:
    """Where a waiting request stands."""

    ahead: int                # turns that start before this one: the running one and those queued in front
    sessions: int             # distinct owners waiting or running, this one included
    wait_s: float | None      # estimated seconds until this turn starts; None until a turn has been measured
    turn_s: float | None      # the moving average of a turn's length (None: nothing measured yet)

    def describe(self, remaining: int = 1, unit: str = "photos") -> str:
        """``"Waiting for the shared model: 2 requests ahead of yours (about 3 s); ..."`` for the page."""
        ahead = "1 request" if self.ahead == 1 else f"{self.ahead} requests"
        text = f"In the queue for the shared model: {ahead} ahead of yours"
        if self.wait_s is not None:
            text += f", your next one starts in about {max(self.wait_s, 1):.0f} s"
        if self.turn_s is not None and remaining > 1:
            # Turns alternate between the sessions that are waiting: each of ours comes after one of each other's.
            finish = (self.wait_s or 0) + remaining * self.sessions * self.turn_s
            text += f"; all {remaining} {unit} left in about {finish:.0f} s"
        return text + "."


@dataclass
class _Ticket:
    number: int
    owner: object
    asked: float


class EngineQueue:
    """First come, first served turns on one shared resource, with places, estimates and measured waits.

    ``with queue.turn(owner, on_wait=...) as waited_s:`` waits for the turn and holds it for the block. The queue
    is also a plain context manager (``with queue:``), for callers that need no place or estimate (the Live and
    Video pages): the same order, the same queue.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, on_idle: Callable[[], None] | None = None,
                 idle_release_s: float = IDLE_RELEASE_S):
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: deque[_Ticket] = deque()
        self._running: _Ticket | None = None
        self._running_since = 0.0
        self._numbers = itertools.count(1)
        self._turn_s: float | None = None
        self._on_idle = on_idle
        self._idle_release_s = idle_release_s
        self._idle_pending = False     # work has ended since on_idle last ran
        self._idle_watching = False     # a thread waits to run on_idle
        self._held = threading.local()  # ``with queue:``: the ticket of this thread's turn
        self._last_activity = clock()

    # ------------------------------------------------------------------ turns

    @contextlib.contextmanager
    def turn(self, owner: object = None, on_wait: Callable[[Place], None] | None = None,
             poll_s: float = 0.5) -> Iterator[float]:
        """Wait for this request's turn and hold it for the ``with`` block; yields the seconds waited.

        ``on_wait(place)`` is called at once when the request has to wait and then every ``poll_s`` seconds, outside
        the queue's lock; an exception from it leaves the queue (the ticket is removed) and propagates."""
        ticket = self._take_ticket(owner)
        try:
            self._wait_for(ticket, on_wait, poll_s)
        except BaseException:
            self._leave(ticket)
            raise
        waited = self._clock() - ticket.asked
        try:
            yield waited
        finally:
            self._finish(ticket)

    def __enter__(self) -> EngineQueue:
        ticket = self._take_ticket(None)
        try:
            self._wait_for(ticket, None, 0.5)
        except BaseException:
            self._leave(ticket)
            raise
        self._held.__dict__.setdefault("tickets", []).append(ticket)
        return self

    def __exit__(self, *exc) -> None:
        self._finish(self._held.tickets.pop())

    # ------------------------------------------------------------------ what a waiting request sees

    def place(self, owner: object) -> Place | None:
        """The place of ``owner``'s first waiting ticket, or None when it has none waiting."""
        with self._cond:
            for ticket in self._waiting:
                if ticket.owner is owner:
                    return self._place_of(ticket)
        return None

    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or bool(self._waiting)

    def wait_until_quiet(self, quiet_s: float = IDLE_RELEASE_S) -> None:
        """Block until no turn has run or waited for ``quiet_s`` seconds: for background work that should only use
        the machine while no session does (the dashboard's int8 warm-up, between the shapes it compiles)."""
        with self._cond:
            quiet_since = None if (self._running or self._waiting) else self._last_activity
            while True:
                if self._running is not None or self._waiting:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = self._clock()
                if quiet_since is not None and self._clock() - quiet_since >= quiet_s:
                    return
                self._cond.wait(quiet_s / 4)

    @property
    def turn_s(self) -> float | None:
        return self._turn_s

    # ------------------------------------------------------------------ internals (callers hold no lock)

    def _take_ticket(self, owner: object) -> _Ticket:
        with self._cond:
            ticket = _Ticket(next(self._numbers), owner, self._clock())
            self._waiting.append(ticket)
            return ticket

    def _wait_for(self, ticket: _Ticket, on_wait: Callable[[Place], None] | None, poll_s: float) -> None:
        while True:
            with self._cond:
                if self._running is None and self._waiting[0] is ticket:
                    self._waiting.popleft()
                    self._running, self._running_since = ticket, self._clock()
                    return
                place = self._place_of(ticket)
            if on_wait is not None:
                on_wait(place)  # outside the lock: it may draw on a page, which may raise to stop this run
            with self._cond:
                if not (self._running is None and self._waiting[0] is ticket):
                    self._cond.wait(poll_s)

    def _place_of(self, ticket: _Ticket) -> Place:
        ahead = list(itertools.takewhile(lambda t: t is not ticket, self._waiting))
        owners = {id(t.owner) if t.owner is not None else id(t) for t in [*ahead, ticket]}
        if self._running is not None:
            owners.add(id(self._running.owner) if self._running.owner is not None else id(self._running))
        count = len(ahead) + (self._running is not None)
        wait_s = None
        if self._turn_s is not None:
            left_of_running = 0.0
            if self._running is not None:
                left_of_running = max(self._turn_s - (self._clock() - self._running_since), 0.0)
            wait_s = left_of_running + len(ahead) * self._turn_s
        return Place(ahead=count, sessions=len(owners), wait_s=wait_s, turn_s=self._turn_s)

    def _leave(self, ticket: _Ticket) -> None:
        with self._cond:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            elif self._running is ticket:   # it was granted just as it left
                self._running = None
            self._cond.notify_all()

    def _finish(self, ticket: _Ticket) -> None:
        with self._cond:
            took = self._clock() - self._running_since
            self._turn_s = took if self._turn_s is None else (1 - MEAN_WEIGHT) * self._turn_s + MEAN_WEIGHT * took
            self._running = None
            self._last_activity = self._clock()
            self._idle_pending = True
            self._cond.notify_all()
            self._start_idle_watch()

    def _start_idle_watch(self) -> None:
        """A daemon thread that runs ``on_idle`` once the queue has stayed empty for ``idle_release_s`` (lock held)."""
        if self._on_idle is None or self._idle_watching:
            return
        self._idle_watching = True
        threading.Thread(target=self._watch_idle, name="cartoonkit-engine-idle", daemon=True).start()

    def _watch_idle(self) -> None:
        while True:
            with self._cond:
                idle_since = None
                while True:
                    if self._running is not None or self._waiting:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = self._clock()
                    elif self._clock() - idle_since >= self._idle_release_s:
                        break
                    self._cond.wait(self._idle_release_s / 4)
                if not self._idle_pending:
                    self._idle_watching = False
                    return
                self._idle_pending = False
            self._on_idle()   # outside the lock: it may take a while (malloc_trim walks the heap)
