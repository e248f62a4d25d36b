"""One judged run: messages from live endpoints or files into a :class:`StreamJudge`.

``judge_endpoints`` and ``judge_files`` return the :class:`JudgeResult`; they never print.
A live run stops when the first series has ended on every socket (unless ``follow``), after
``max_messages``, after ``timeout_s`` without a message, or on Ctrl-C (the findings so far are
kept and the interruption is recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jfconform.stream.inputs import FileSource, LiveSockets, Unsplittable, read_messages
from jfconform.stream.judge import JudgeOptions, JudgeResult, StopReason, StreamJudge

__all__ = ["Progress", "RunOptions", "judge_endpoints", "judge_files"]

#: Seconds between progress callbacks.
PROGRESS_INTERVAL_S = 0.5

#: Called now and then with (messages judged, seconds since the first message).
Progress = Callable[[int, float], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How long to listen and what to do with the messages.

    Attributes:
        judge: how strictly to judge (see :class:`JudgeOptions`).
        subscribe: connect SUB sockets (preview/metadata PUB) instead of PULL.
        follow: live: keep judging further series instead of stopping after the first.
        max_messages: stop after this many messages (None: no limit).
        timeout_s: live: stop after this long without a message.
    """

    judge: JudgeOptions = field(default_factory=JudgeOptions)
    subscribe: bool = False
    follow: bool = False
    max_messages: int | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_messages is not None and self.max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {self.max_messages}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout must be > 0 s, got {self.timeout_s}")


class _Ticker:
    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._started = time.monotonic()
        self._next = self._started + PROGRESS_INTERVAL_S

    def tick(self, messages: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PROGRESS_INTERVAL_S
            self._progress(messages, now - self._started)


def judge_endpoints(
    endpoints: Sequence[str], options: RunOptions, progress: Progress | None = None
) -> JudgeResult:
    """Connect to ``endpoints`` and judge what arrives (raises ``InputError`` for a bad
    endpoint)."""
    judge = StreamJudge(len(endpoints), options.judge)
    ticker = _Ticker(progress)
    stop = StopReason.TIMEOUT
    with LiveSockets(endpoints, subscribe=options.subscribe) as sockets:
        try:
            while True:
                batch = sockets.receive(options.timeout_s)
                if not batch:
                    break
                for message in batch:
                    judge.feed(
                        message.socket, message.data, message.arrival_s, parts=message.frames
                    )
                ticker.tick(judge.messages)
                if options.max_messages is not None and judge.messages >= options.max_messages:
                    stop = StopReason.MAX_MESSAGES
                    break
                if not options.follow and judge.series_ended_everywhere():
                    stop = StopReason.SERIES_ENDED
                    break
        except KeyboardInterrupt:
            stop = StopReason.INTERRUPTED
    return judge.finish(stop)


def judge_files(
    sources: Sequence[FileSource], options: RunOptions, progress: Progress | None = None
) -> JudgeResult:
    """Judge every message of the files (raises ``InputError`` for an unreadable file)."""
    judge = StreamJudge(len(sources), options.judge)
    ticker = _Ticker(progress)
    stop = StopReason.END_OF_INPUT
    try:
        for index, source in enumerate(sources):
            for item in read_messages(source):
                if isinstance(item, Unsplittable):
                    judge.unreadable(
                        index, item.size, f"{item.path} at byte {item.offset}: {item.reason}"
                    )
                else:
                    judge.feed(index, item)
                ticker.tick(judge.messages)
                if options.max_messages is not None and judge.messages >= options.max_messages:
                    stop = StopReason.MAX_MESSAGES
                    break
            if stop == StopReason.MAX_MESSAGES:
                break
    except KeyboardInterrupt:
        stop = StopReason.INTERRUPTED
    return judge.finish(stop)
