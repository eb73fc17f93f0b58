"""WorkerHost: every worker is told to stop before any wait, and a shutdown returns within its bound even when a
thread will not stop (it is abandoned, not destroyed while running, and named)."""

from __future__ import annotations

import threading
import time

from app.workers import Worker, WorkerHost, abandoned_threads


class WaitsForOthers(Worker):
    """Stops only once it *and* ``other`` are cancelled: a host that cancels one worker, waits for it and only
    then cancels the next would wait for this one in vain."""

    def __init__(self, started: threading.Event) -> None:
        super().__init__()
        self.started: threading.Event = started
        self.other: Worker | None = None

    def work(self) -> None:
        self.started.set()
        while not (self.cancel_event.is_set() and self.other is not None and self.other.cancel_event.is_set()):
            time.sleep(0.005)
        self.check_cancel()  # raises SeparationCancelled: the thread finishes


class Stubborn(Worker):
    """Ignores cancelling until ``release`` is set (a decode or a driver call that cannot be interrupted)."""

    def __init__(self, started: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.started, self.release = started, release

    def work(self) -> None:
        self.started.set()
        self.release.wait(120)


def test_shutdown_cancels_every_worker_before_waiting(qtbot) -> None:
    host = WorkerHost()
    started = [threading.Event(), threading.Event()]
    first, second = WaitsForOthers(started[0]), WaitsForOthers(started[1])
    first.other, second.other = second, first
    host.start(first)
    host.start(second)
    assert all(event.wait(30) for event in started)
    assert host.shutdown(timeout_seconds=60.0)  # a serial cancel-then-wait would time out here
    assert host.threads() == []


def test_shutdown_is_bounded_when_a_thread_will_not_stop(qtbot) -> None:
    host = WorkerHost()
    started, release = threading.Event(), threading.Event()
    worker = Stubborn(started, release)
    host.start(worker)
    assert started.wait(30)
    begun = time.monotonic()
    assert not host.shutdown(timeout_seconds=0.5)  # it cannot stop: the shutdown says so instead of waiting
    assert time.monotonic() - begun < 30.0  # a hang detector only: the bound is 0.5 s
    assert "Stubborn" in abandoned_threads()
    assert [t.objectName() for t in host.threads()] == ["Stubborn"]  # not joined: still reported
    release.set()
    qtbot.waitUntil(lambda: "Stubborn" not in abandoned_threads(), timeout=30000)
    assert host.threads() == []
