"""Long-lived background threads, started once per process.

Starting a thread costs little on an idle machine but milliseconds on a loaded one, and the
writer and the streamer need their helpers at their busiest moments (a series' start, a
receiver falling behind). A ``Worker`` is one daemon thread that handles queued items in
order for the whole process; it is started on first use, and again in a forked child, which
inherits the queue but not the thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BatchWorker", "Job", "Worker"]

Item = TypeVar("Item")


class _Thread(Generic[Item]):
    """The queue and the thread; ``_run`` is what the thread does with the queue."""

    def __init__(self, name: str, max_queued: int) -> None:
        self.name = name
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._queue: queue.Queue[Item] | None = None
        self._pid = 0

    def put(self, item: Item) -> None:
        items = self._queue
        if items is None or self._pid != os.getpid():
            items = self._start()
        items.put(item)

    def _start(self) -> queue.Queue[Item]:
        with self._lock:
            if self._queue is None or self._pid != os.getpid():
                items: queue.Queue[Item] = queue.Queue(self._max_queued)
                thread = threading.Thread(
                    target=self._run, args=(items,), name=self.name, daemon=True
                )
                thread.start()
                self._queue, self._pid = items, os.getpid()
            return self._queue

    def _run(self, items: queue.Queue[Item]) -> None:
        raise NotImplementedError


class Worker(_Thread[Item]):
    """``put(item)`` queues an item for ``handle(item)`` on the worker's thread.

    ``handle`` must not raise (it owns its errors); ``max_queued`` > 0 bounds the queue
    (``put`` then waits for room).
    """

    def __init__(self, name: str, handle: Callable[[Item], None], max_queued: int = 0) -> None:
        super().__init__(name, max_queued)
        self._handle = handle

    def _run(self, items: queue.Queue[Item]) -> None:
        get, handle = items.get, self._handle
        while True:
            handle(get())


class BatchWorker(_Thread[Item]):
    """A ``Worker`` whose ``handle`` takes every item queued meanwhile, up to ``max_batch``
    (the first one waited for, the others only if there): one wake-up and one call per
    run of items rather than per item."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[Item]], None],
        max_queued: int = 0,
        max_batch: int = 16,
    ) -> None:
        super().__init__(name, max_queued)
        self._handle_batch = handle
        self.max_batch = max_batch

    def _run(self, items: queue.Queue[Item]) -> None:
        get, take, handle, limit = items.get, items.get_nowait, self._handle_batch, self.max_batch
        while True:
            batch = [get()]
            try:
                while len(batch) < limit:
                    batch.append(take())
            except queue.Empty:
                pass
            handle(batch)


class Job:
    """A function run on a ``Worker`` of jobs; ``wait`` returns once it has run, and
    ``error`` then holds what it raised (None when it returned)."""

    def __init__(self, function: Callable[[], None]) -> None:
        self._function = function
        self._done = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self._function()
        except Exception as error:  # the job's owner reads it; the thread lives on
            self.error = error
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()
