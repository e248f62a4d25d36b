"""What ZeroMQ still holds of the messages sent on one socket.

``send`` on a PUSH socket only queues a message: ZeroMQ writes it to the connection later,
as fast as the writer reads, and discards whatever is still queued once the socket is closed
and its linger has run out. So "sent" says nothing about delivery, and a series' end must
wait until the images queued before it have left. Every image goes out zero-copy with a
``zmq.MessageTracker`` (the send buffers need it anyway, to know when they may be rewritten),
which completes once ZeroMQ has handed the message's last byte to the connection: the
operating system's TCP buffer, from which the kernel delivers it even after the process has
exited. ``SendBacklog`` keeps the trackers of one socket that are not known to be done; how
many remain is what a writer has still to take.

Keeping a tracker costs the sending thread one ``deque.append``; the trackers that are done
are let go in batches (ZeroMQ completes them in the order they were sent to one writer, but
not across several writers on one socket, so a batch checks them all), so the backlog holds
about the send queue's worth of trackers, not one per image of the series.
"""

from __future__ import annotations

from collections import deque

import zmq

__all__ = ["SendBacklog"]

#: Trackers kept before the done ones are first let go.
PRUNE_MIN = 1024


class SendBacklog:
    """Trackers of the messages sent on one socket that ZeroMQ may still hold."""

    def __init__(self) -> None:
        self._trackers: deque[zmq.MessageTracker] = deque()
        self._prune_at = PRUNE_MIN
        self._last_queued = 0  # what ``note_queued`` last saw

    def add(self, tracker: zmq.MessageTracker) -> None:
        """One message queued (called in the send loop: O(1) amortised)."""
        self._trackers.append(tracker)
        if len(self._trackers) >= self._prune_at:
            self._let_go_of_done()
            self._prune_at = max(PRUNE_MIN, 2 * len(self._trackers))

    def pending(self) -> int:
        """How many queued messages have not yet left ZeroMQ for the connection."""
        self._let_go_of_done()
        return len(self._trackers)

    def note_queued(self) -> None:
        """Remember about how many messages are queued now (the ones done at the head let
        go: O(1) amortised, as ZeroMQ completes one writer's messages in order), for
        ``discard`` should the writer be found gone before the next look."""
        trackers = self._trackers
        while trackers and trackers[0].done:
            trackers.popleft()
        self._last_queued = len(trackers)

    def discard(self) -> int:
        """Forget every message not yet known to have left, as their writer is gone: ZeroMQ
        discards them, and their trackers then complete as if sent. Returns about how many
        were queued: as many as ``note_queued`` last saw (before ZeroMQ dropped them)."""
        last_queued = self._last_queued
        self._trackers.clear()
        self._last_queued = 0
        return last_queued

    def _let_go_of_done(self) -> None:
        self._trackers = deque(tracker for tracker in self._trackers if not tracker.done)
