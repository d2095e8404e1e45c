"""`FigureWriter`: the instruments' TensorBoard figures drawn and written on a thread of their own.

Drawing a matplotlib figure takes 0.2–0.5 s (experiments/performance/), and on the training thread the step waits
for it: on a GPU the queue of kernels runs dry meanwhile. The instruments hand the figure's data (host copies) to
one worker thread, which builds the figure with matplotlib's object-oriented API (no pyplot state shared with
the training thread), renders it and adds it to the run's SummaryWriter, whose event file is written by a queue
of its own. Figures are written in the order they were asked for; `flush` waits for them, ends the thread and
re-raises the first error, so a figure that failed is never lost silently.

concurrent.futures gives the thread and the futures; what it lacks is the flush with errors re-raised.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class FigureWriter:
    """``submit(fn, *args)`` runs ``fn(*args)`` on the worker thread; ``flush()`` waits for all of them."""

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def submit(self, fn: Callable, *args) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reslab-figures")
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        self._pending.append(self._pool.submit(fn, *args))

    def flush(self) -> None:
        """Wait for every figure asked for so far and end the thread (a later `submit` starts another: a joblib
        worker trains job after job, and would otherwise keep one idle thread per job); raise the first error
        one of the figures met."""
        pending, self._pending = self._pending, []
        errors = [e for e in (f.exception() for f in pending) if e is not None]  # exception() waits
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if errors:
            raise errors[0]
