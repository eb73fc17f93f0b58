"""The adaptation in a child process at low priority, for the app (the pattern of
:mod:`engine.separation.child`): ``multiprocessing`` "spawn", a pipe the child reports through, a lock-free
shared cancel byte (:class:`~engine.separation.child.SharedFlag`), the child niced before it imports torch, and
SIGINT ignored there (the parent stops it). The parent polls :meth:`AdaptProcess.poll` from a timer: nothing here
blocks.

Messages (child -> parent): ``("progress", AdaptProgress fields)``, ``("done", model folder, job state)``,
``("cancelled", message)``, ``("error", one line)``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

from engine.separation.child import SharedFlag, describe_exit

#: The child's niceness: below the audio thread and the GUI.
NICE = 10


def _adapt_main(conn: Any, cancel: SharedFlag, request: dict[str, Any], nice: int) -> None:
    """The child: run (or resume) the job of ``request`` and report through ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    from dataclasses import asdict

    from engine.adapt.job import AdaptJob, AdaptRequest  # torch is imported here, after the nice
    from engine.errors import SeparationCancelled, ShotokuError

    def progress(event: Any) -> None:
        conn.send(("progress", asdict(event)))

    try:
        job = AdaptJob(AdaptRequest.from_json(request), progress=progress, cancel=cancel)  # type: ignore[arg-type]
        folder = job.run()
        conn.send(("done", str(folder), job.state))
    except SeparationCancelled as err:
        conn.send(("cancelled", str(err)))
    except ShotokuError as err:
        conn.send(("error", str(err)))
    except Exception as err:  # reported to the user as one line
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


class AdaptProcess:
    """An adaptation running in a child process.

    ``start()``; then ``poll()`` (non-blocking) returns the messages that arrived; ``cancel()`` asks the job to
    stop at its next step (it stays resumable); ``stop(timeout)`` cancels and waits, then terminates.
    """

    def __init__(self, request: dict[str, Any], nice: int = NICE) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.cancel_flag = SharedFlag(self.ctx)
        self.receiver, sender = self.ctx.Pipe(duplex=False)
        self.process = self.ctx.Process(target=_adapt_main, args=(sender, self.cancel_flag, request, nice),
                                        daemon=True, name="shotoku-adapt")
        self._sender = sender
        self.finished = False

    def start(self) -> None:
        self.process.start()
        self._sender.close()  # the child holds the only sending end: its end is an EOF here

    def poll(self) -> list[tuple]:
        """The messages waiting; an ``("error", ...)`` is added when the child died without a last word."""
        out: list[tuple] = []
        while not self.finished:
            try:
                if not self.receiver.poll():
                    break
                message = self.receiver.recv()
            except (EOFError, OSError):
                self.process.join(1.0)
                out.append(("error", describe_exit(self.process.exitcode).replace("separation", "adaptation")))
                self.finished = True
                break
            out.append(message)
            if message[0] in ("done", "cancelled", "error"):
                self.finished = True
        return out

    def cancel(self) -> None:
        self.cancel_flag.set()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel, wait up to ``timeout`` seconds, then terminate (and kill); True when the process has ended."""
        self.cancel()
        if self.process.pid is None:
            return True
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)
        self.receiver.close()
        return not self.process.is_alive()
