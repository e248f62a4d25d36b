"""The image stream's PUSH sockets, bound as jfjoch_broker binds them (writers connect PULL).

Send rules follow stream.md §1.2: the start message waits for a writer up to a timeout and
fails with "no writer" otherwise; the end message is tried for a while on every socket and a
failure is counted, not raised. Images follow the ``OnSlow`` policy:

* ``catch-up`` (default): an image the socket cannot queue waits for room; later images
  are then late and go back to back until the stream is on schedule again. Only an image
  that cannot be queued before it is ``max_lag_s`` behind its slot is dropped and counted,
  so a writer's short stall (scheduling jitter, a page-cache flush) costs no image and a
  stalled writer costs images at the stream's rate, never more than ``max_lag_s`` of
  delay. An image that finds room is sent however late it is (the sending thread itself
  may have been held up): the budget bounds waits for a writer, not the schedule. The
  caller turns the schedule into each image's wait (``schedule_wait_s``).
* ``drop`` (as jfjoch_broker, whose detector does not wait for writers): an image the
  socket cannot queue is dropped and counted once it has waited the send timeout or, when
  paced, until the next image is due, so the stream keeps its rate.
* ``block``: wait for the writer; if one image waits longer than the send timeout the stream
  stops with ``WriterStalledError`` (the end message is still tried).

With ``catch-up`` and ``drop``, after a wait of a whole send timeout (unpaced, or a period
longer than the timeout) the socket sends without waiting until it accepts an image again,
so a stalled writer costs one timeout, not one per image.

Every image is sent zero-copy with a tracker (``jfsim.stream.backlog``), so that the end of a
series knows what ZeroMQ still holds: ``send_end`` waits until the end message and every image
before it have left for the connection, for as long as the writer keeps taking them, and
reports what was still queued when it gave up.

A writer that disconnects during a series takes its queue with it: ZeroMQ discards the
messages queued for that connection, and their trackers then complete as if sent. Each
socket's monitor reports the disconnection; the monitor is looked at before each call
of its socket that may send (a few microseconds): ZeroMQ drops a departed writer's queue
during such a call, so the images queued at the previous look, the last one before the
writer was found gone, are counted as lost (``images_lost_on_disconnect``). That is an
estimate: the writer may have taken a few since, and bytes already in the operating
system's buffers are beyond any count. The disconnection itself is always
reported (``writer_disconnects``), and it fails the stream's exit status.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import zmq

from jfsim.stream.backlog import SendBacklog
from jfsim.stream.errors import (
    NoWriterError,
    StreamError,
    StreamOptionError,
    WriterStalledError,
)

__all__ = [
    "EndDelivery",
    "ImageSockets",
    "OnSlow",
    "SendOutcome",
    "bind_socket",
    "writer_hint",
]

#: Waits are cut into slices of this length so that a stop request is seen promptly.
POLL_SLICE_S = 0.05
#: How often the end of a series looks at what ZeroMQ still holds (a fast writer's stream
#: ends at most this much later than its last message left).
END_POLL_S = 0.01


class OnSlow(str, enum.Enum):
    """What to do with an image when a writer does not take it at once."""

    CATCH_UP = "catch-up"
    DROP = "drop"
    BLOCK = "block"


class SendOutcome(enum.Enum):
    SENT = "sent"
    SENT_AFTER_WAIT = "sent after wait"
    DROPPED = "dropped"
    CANCELLED = "cancelled"  # a stop was requested while the image waited


@dataclass(frozen=True, slots=True)
class EndDelivery:
    """How the end of a series went on one socket.

    ``delivered``: the end message, and every image queued before it, left ZeroMQ for the
    connection. ``images_lost``: images still queued when the wait gave up (0 if delivered);
    ZeroMQ discards them when the socket closes.
    """

    delivered: bool
    images_lost: int = 0


#: The command-line option that names each role's endpoint (for error messages).
ROLE_OPTIONS = {"image": "--endpoint", "preview": "--preview", "metadata": "--metadata"}


def bind_socket(socket: zmq.Socket, endpoint: str, role: str) -> str:
    """Bind ``endpoint`` and return the address really bound (resolves ``*`` ports).

    A failure is one line naming the option and the endpoint (whose port is busy, or whose
    address is not one of this machine's).
    """
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        option = ROLE_OPTIONS.get(role, f"{role} endpoint")
        reason = str(error.strerror).split(" (addr=")[0]
        raise StreamOptionError(
            f"{option} {endpoint}: cannot bind ({reason}); use tcp://HOST:PORT with a free "
            "port on this machine, e.g. tcp://127.0.0.1:5500 (tcp://0.0.0.0:5500 for writers "
            "on other machines)"
        ) from None
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def writer_hint(endpoint: str) -> str:
    """The address a writer would connect to for a bound ``endpoint`` (for error messages)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp":
        return endpoint
    host = parts.hostname or "HOST"
    if host in ("0.0.0.0", "*", "::"):
        host = "HOST"
    return f"tcp://{host}:{parts.port}" if parts.port else f"tcp://{host}:PORT"


class ImageSockets:
    """One PUSH socket per endpoint; images go to one socket, start and end to all."""

    def __init__(
        self,
        context: zmq.Context,
        endpoints: Sequence[str],
        *,
        sndhwm: int,
        on_slow: OnSlow,
        send_timeout_s: float,
        stop: threading.Event | None = None,
    ) -> None:
        if not endpoints:
            raise StreamOptionError("no image endpoint given; add --endpoint tcp://127.0.0.1:5500")
        self.endpoints = tuple(endpoints)
        self.on_slow = on_slow
        self.send_timeout_s = send_timeout_s
        self._stop = stop
        self._sockets: list[zmq.Socket] = []
        self._monitors: list[zmq.Socket] = []  # one per socket: its writers' disconnections
        self._given_up: set[int] = set()  # sockets whose end wait gave up
        self.bound_endpoints: list[str] = []
        try:
            for endpoint in self.endpoints:
                socket = context.socket(zmq.PUSH)
                self._sockets.append(socket)
                # Every image zero-copy with a real tracker, however small (pyzmq copies a
                # message under 64 kB and gives it a tracker that is done at once).
                socket.copy_threshold = 0
                socket.setsockopt(zmq.SNDHWM, sndhwm)
                socket.setsockopt(zmq.LINGER, 0)
                self.bound_endpoints.append(bind_socket(socket, endpoint, "image"))
                self._monitors.append(socket.get_monitor_socket(zmq.EVENT_DISCONNECTED))
        except BaseException:
            self.close(linger_s=0.0)
            raise
        self._nonblocking = [False] * len(self._sockets)
        self._backlogs = [SendBacklog() for _ in self._sockets]
        #: Per socket: writers that disconnected during the series, and about how many
        #: images were still queued for them then (discarded by ZeroMQ; see above).
        self.writer_disconnects = [0] * len(self._sockets)
        self.images_lost_on_disconnect = [0] * len(self._sockets)

    def __len__(self) -> int:
        return len(self._sockets)

    def __enter__(self) -> ImageSockets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(linger_s=0.0)

    def close(self, *, linger_s: float) -> None:
        """Close every socket, letting queued messages flush for up to ``linger_s`` (at once
        where ``send_end`` gave up: what those hold is already reported lost)."""
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._monitors = []
        for index, socket in enumerate(self._sockets):
            socket.close(linger=0 if index in self._given_up else int(linger_s * 1000))
        self._sockets = []

    def _disconnections(self, index: int) -> int:
        """Disconnections reported by socket ``index``'s monitor since it was last looked at."""
        monitor = self._monitors[index]
        events = 0
        while cast(int, monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            monitor.recv_multipart()
            events += 1
        return events

    def _note_disconnections(self, index: int) -> None:
        """Count a writer of socket ``index`` that left during the series, with the images
        still queued for it (ZeroMQ discards them)."""
        departed = self._disconnections(index)
        if departed:
            self.writer_disconnects[index] += departed
            self.images_lost_on_disconnect[index] += self._backlogs[index].discard()
        else:  # before the socket is called again, which may drop a departed writer's queue
            self._backlogs[index].note_queued()

    def _departure(
        self, index: int, departed: int, end_tracker: zmq.MessageTracker | None
    ) -> EndDelivery:
        """The end of socket ``index``, whose writer left while the end waited. Once the
        end message is queued the socket is not called again, so ZeroMQ has not yet
        dropped the departed writer's queue and the trackers still tell what it took: a
        writer that took everything and then left is no loss."""
        backlog = self._backlogs[index]
        if end_tracker is None:
            lost = backlog.discard()
        else:
            lost = backlog.pending()
            if end_tracker.done and lost == 0:
                return EndDelivery(delivered=True)
            backlog.discard()
        self.writer_disconnects[index] += departed
        self.images_lost_on_disconnect[index] += lost
        return EndDelivery(delivered=False)

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _wait_writable(
        self, indices: Sequence[int], deadline_s: float, *, interruptible: bool = False
    ) -> set[int]:
        """Indices (of ``indices``) whose socket can take a message before the deadline."""
        ready: set[int] = set()
        pending = list(indices)
        while pending and not (interruptible and self._stopping()):
            poller = zmq.Poller()
            for index in pending:
                poller.register(self._sockets[index], zmq.POLLOUT)
            remaining = deadline_s - time.monotonic()
            if remaining <= 0:
                break
            events = dict(poller.poll(int(min(remaining, POLL_SLICE_S) * 1000) + 1))
            for index in list(pending):
                if events.get(self._sockets[index], 0) & zmq.POLLOUT:
                    ready.add(index)
                    pending.remove(index)
        return ready

    def send_start(self, frames: Sequence[bytes], timeout_s: float) -> None:
        """Give socket i the start message ``frames[i]``; ``NoWriterError`` names idle ones."""
        deadline = time.monotonic() + timeout_s
        indices = range(len(self._sockets))
        ready = self._wait_writable(indices, deadline, interruptible=True)
        for index in indices:  # writers that came and went before the series lost nothing
            self._disconnections(index)
        if self._stopping():
            raise StreamError("stopped before every writer took the start message")
        idle = [i for i in indices if i not in ready]
        if idle:
            raise NoWriterError(
                f"no writer connected to {', '.join(self.endpoints[i] for i in idle)} within "
                f"{timeout_s:g} s; start a writer "
                f"(e.g. jfsim write {writer_hint(self.bound_endpoints[idle[0]])}) "
                "or raise --start-timeout"
            )
        for index in indices:
            self._sockets[index].send(frames[index], zmq.NOBLOCK)

    def send_first(self, frame: bytes, timeout_s: float) -> bool:
        """Send to the first socket only (calibration messages); False if it did not take it."""
        if not self._wait_writable([0], time.monotonic() + timeout_s):
            return False
        self._sockets[0].send(frame, zmq.NOBLOCK)
        return True

    def send_end(
        self,
        frame: bytes,
        no_progress_timeout_s: float,
        *,
        give_up: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
    ) -> tuple[EndDelivery, ...]:
        """Queue the end message on every socket, then wait until it and every image queued
        before it have left ZeroMQ for the connection.

        The wait lasts as long as the writers keep taking messages: a socket is given up only
        once none of its messages (nor the end message, waiting for room) left for
        ``no_progress_timeout_s``, or at once when ``give_up`` is set. ``on_wait(images
        still queued)`` is called every ``END_POLL_S`` while waiting.
        """
        n_sockets = len(self._sockets)
        end_trackers: list[zmq.MessageTracker | None] = [None] * n_sockets
        queued = [backlog.pending() for backlog in self._backlogs]
        last_progress_s = [time.monotonic()] * n_sockets
        outcomes: dict[int, EndDelivery] = {}
        waiting = list(range(n_sockets))
        while waiting:
            now = time.monotonic()
            for index in list(waiting):
                departed = self._disconnections(index)
                if departed:
                    outcomes[index] = self._departure(index, departed, end_trackers[index])
                    waiting.remove(index)
                    continue
                progressed = False
                if end_trackers[index] is None:
                    self._backlogs[index].note_queued()
                    end_trackers[index] = self._offer(index, frame)
                    progressed = end_trackers[index] is not None
                still_queued = self._backlogs[index].pending()
                progressed = progressed or still_queued < queued[index]
                queued[index] = still_queued
                end_tracker = end_trackers[index]
                if end_tracker is not None and end_tracker.done and still_queued == 0:
                    outcomes[index] = EndDelivery(delivered=True)
                elif progressed:
                    last_progress_s[index] = now
                    continue
                elif now - last_progress_s[index] >= no_progress_timeout_s:
                    outcomes[index] = EndDelivery(delivered=False, images_lost=still_queued)
                else:
                    continue
                waiting.remove(index)
            if waiting and give_up is not None and give_up.is_set():
                for index in waiting:
                    outcomes[index] = EndDelivery(delivered=False, images_lost=queued[index])
                break
            if waiting:
                if on_wait is not None:
                    on_wait(sum(queued[index] for index in waiting))
                time.sleep(END_POLL_S)
        self._given_up = {index for index, outcome in outcomes.items() if not outcome.delivered}
        return tuple(outcomes[index] for index in range(n_sockets))

    def _offer(self, index: int, frame: bytes) -> zmq.MessageTracker | None:
        """Queue ``frame`` on socket ``index`` if it has room now; its tracker, or None."""
        socket = self._sockets[index]
        if not cast(int, socket.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
            return None
        try:
            return socket.send(frame, zmq.NOBLOCK, copy=False, track=True)
        except zmq.Again:
            return None

    def send_image(
        self,
        index: int,
        build: Callable[[], memoryview],
        *,
        schedule_wait_s: float | None = None,
    ) -> tuple[SendOutcome, zmq.MessageTracker | None, memoryview | None]:
        """Send one image (zero-copy) to socket ``index`` following the ``on_slow`` policy.

        ``build`` makes the message bytes; it is called only once the socket has room, so an
        image that is dropped costs no encoding. ``schedule_wait_s``: how long the schedule
        lets this image wait for room before it is dropped (``catch-up``: until it is the
        lag budget late; paced ``drop``: until the next image is due); None: up to the send
        timeout. ``block`` always waits up to the send timeout.
        Returns the outcome, the tracker of the queued message (kept in the socket's
        backlog too) and the bytes if built.
        """
        socket = self._sockets[index]
        buffer: memoryview | None = None
        self._note_disconnections(index)
        if cast(int, socket.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
            buffer = build()
            try:
                tracker = socket.send(buffer, zmq.NOBLOCK, copy=False, track=True)
                self._nonblocking[index] = False
                self._backlogs[index].add(tracker)
                return SendOutcome.SENT, tracker, buffer
            except zmq.Again:
                pass
        dropping = self.on_slow is not OnSlow.BLOCK
        if dropping and self._nonblocking[index]:
            return SendOutcome.DROPPED, None, buffer
        wait_s = self.send_timeout_s
        schedule_bound = dropping and schedule_wait_s is not None
        if dropping and schedule_wait_s is not None:
            wait_s = max(schedule_wait_s, 0.0)
        deadline = time.monotonic() + wait_s
        while not self._stopping():
            self._note_disconnections(index)
            if self._wait_writable([index], min(deadline, time.monotonic() + POLL_SLICE_S)):
                if buffer is None:
                    buffer = build()
                try:
                    tracker = socket.send(buffer, zmq.NOBLOCK, copy=False, track=True)
                except zmq.Again:
                    continue
                self._nonblocking[index] = False
                self._backlogs[index].add(tracker)
                return SendOutcome.SENT_AFTER_WAIT, tracker, buffer
            if time.monotonic() >= deadline:
                break
        if self._stopping():
            return SendOutcome.CANCELLED, None, buffer
        if not dropping:
            raise WriterStalledError(
                f"the writer on {self.endpoints[index]} took no image for "
                f"{self.send_timeout_s:g} s (--on-slow block); check the writer, raise "
                "--send-timeout, or use --on-slow catch-up"
            )
        if not schedule_bound:
            self._nonblocking[index] = True
        return SendOutcome.DROPPED, None, buffer
