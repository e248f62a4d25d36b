"""Listening to writers' finalized-file notifications (jfjoch_writer ``-f``, stream.md §8).

jfjoch_broker learns what its writers wrote before it reports a collection done. jfsim
does this with the interface both jfjoch_writer and ``jfsim write`` already have: a PUB
socket announcing every closed data file as one JSON text message. A SUB socket connects
to each writer's; every notification goes to a callback. A message that is not a JSON
object is counted and logged, never fatal.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from jfsim.serve.errors import ServeOptionError

__all__ = ["WriterFileListener"]

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 100


class WriterFileListener:
    """SUB-connects to ``endpoints`` and calls ``on_file(notification)`` from its thread."""

    def __init__(self, endpoints: Sequence[str], on_file: Callable[[dict[str, Any]], None]) -> None:
        self.endpoints = tuple(endpoints)
        self.malformed = 0
        self._on_file = on_file
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            for endpoint in self.endpoints:
                self._socket.connect(endpoint)
        except zmq.ZMQError as error:
            self._socket.close()
            self._context.term()
            raise ServeOptionError(
                f"--writer-files {endpoint!r}: cannot connect ({error}); use tcp://HOST:PORT"
            ) from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="jfsim-serve-files", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(POLL_INTERVAL_MS):
                continue
            frame = self._socket.recv()
            try:
                notification = json.loads(frame)
            except (UnicodeDecodeError, ValueError):
                notification = None
            if not isinstance(notification, dict):
                self.malformed += 1
                log.warning("writer notification ignored: not a JSON object (%.60r)", frame)
                continue
            self._on_file(notification)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
        self._context.term()
