"""Where a stream's messages come from: a recorded series (messages or a file) or an experiment.

A source gives the start, calibration and end messages, prepares its distinct frames (a
recording: every recorded image; an experiment: a pool of K rendered frames) and says which
fields change from image to image (id, timing). Image ``k`` sends frame ``k % n_frames``; the
fields tied to the pixels (analysis results) travel with the frame. Frames are reused only
when more images are asked for than there are frames, and ``FrameReuse`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jfsim.protocol import Message, Rational
from jfsim.series import now_ms
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.frames import FramePool, Frames, PoolFrame

__all__ = [
    "PER_IMAGE_FIELDS",
    "FrameReuse",
    "FrameSource",
    "MessageListSource",
    "PoolProgress",
    "RecordedSeries",
]

#: Called after each pool frame is ready: (frames done, frames total).
PoolProgress = Callable[[int, int], None]

#: Image fields that change with the image number; every other field belongs to the pixels.
PER_IMAGE_FIELDS = (
    "series_id",
    "series_unique_id",
    "image_id",
    "real_time",
    "start_time",
    "stop_time",
)


class FrameSource(Protocol):
    """What the streamer needs from wherever the images come from.

    ``frame_noun`` names one distinct frame in announcements ("recorded image",
    "rendered frame"); ``default_pool_size`` is how many of them ``build_pool`` makes when
    the user did not choose.
    """

    description: str
    frame_noun: str

    def default_number_of_images(self) -> int: ...

    def default_pool_size(self) -> int: ...

    def images_per_file(self) -> int: ...

    def start_message(self, number_of_images: int) -> Message: ...

    def calibration_messages(self) -> Sequence[Message]: ...

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> Frames: ...

    def image_fields(self, image_id: int) -> dict[str, Any]: ...

    def end_message(self, images_collected: int) -> Message: ...


@dataclass(frozen=True, slots=True)
class FrameReuse:
    """Which images of a stream reuse which frames: image ``k`` sends frame ``k % n_frames``."""

    n_images: int
    n_frames: int
    frame_noun: str = "frame"

    @property
    def repeated_images(self) -> int:
        """Images that send a frame an earlier image already sent."""
        return max(0, self.n_images - self.n_frames)

    def announcement(self) -> str | None:
        """One line for the start of a run that repeats frames; None when none repeats."""
        if not self.repeated_images:
            return None
        frames = self.n_frames
        which = f"{self.frame_noun} 0" if frames == 1 else f"{self.frame_noun}s 0–{frames - 1}"
        return (
            f"images {frames}–{self.n_images - 1} repeat {which}: image k carries the pixels "
            f"and analysis fields of {self.frame_noun} k mod {frames}, with its own id and "
            "timing"
        )


class RecordedSeries:
    """Start, calibration, end and per-image fields of a recorded series, replayed.

    Image ids are renumbered from 0 in recorded order; ``start_time``/``stop_time`` follow
    the start message's ``frame_time`` when the recorded images carry them; ``series_id``
    and ``series_unique_id`` are the start message's. The start message's
    ``number_of_images`` and the end message's ``images_collected`` are what is streamed.
    ``arm_date`` (start) and ``end_date`` (end) are stamped at replay time, so that they
    frame the replay, unless ``keep_dates`` keeps the recorded ones.
    """

    frame_noun = "recorded image"

    def __init__(
        self,
        description: str,
        messages: Iterable[Message],
        n_images: int,
        *,
        keep_dates: bool = False,
    ) -> None:
        """``messages``: the series' start, calibration and end messages (images apart)."""
        start: Message | None = None
        end: Message | None = None
        calibration: list[Message] = []
        for message in messages:
            if message.type == "start" and start is None:
                start = message
            elif message.type == "calibration":
                calibration.append(message)
            elif message.type == "end":
                end = message
        if start is None:
            raise StreamOptionError(f"{description}: no start message; record a whole series")
        if not n_images:
            raise StreamOptionError(f"{description}: no image message to stream")
        self.description = description
        self._start = start
        self._calibration = tuple(calibration)
        self._end = end
        self._n_images = n_images
        self._keep_dates = keep_dates
        self._n_frames: int | None = None

    def _recorded_fields(self, frame: int) -> dict[str, Any]:
        """The recorded per-image fields (``PER_IMAGE_FIELDS`` present) of one frame."""
        raise NotImplementedError

    def default_number_of_images(self) -> int:
        return self._n_images

    def default_pool_size(self) -> int:
        return self._n_images

    def images_per_file(self) -> int:
        return int(self._start.get("images_per_file") or 0)

    def start_message(self, number_of_images: int) -> Message:
        fields = {**self._start.fields, "number_of_images": number_of_images}
        if not self._keep_dates:
            fields["arm_date"] = now_ms()
        return Message("start", fields)

    def calibration_messages(self) -> Sequence[Message]:
        return self._calibration

    def _use_frames(self, n_frames: int) -> None:
        self._n_frames = n_frames

    def image_fields(self, image_id: int) -> dict[str, Any]:
        if self._n_frames is None:
            raise RuntimeError(f"{self.description}: build_pool must come before image_fields")
        recorded = self._recorded_fields(image_id % self._n_frames)
        fields = dict(recorded)
        fields["image_id"] = image_id
        for key in ("series_id", "series_unique_id"):
            if key in fields and key in self._start.fields:
                fields[key] = self._start[key]
        start, stop = recorded.get("start_time"), recorded.get("stop_time")
        frame_time_s = self._start.get("frame_time")
        if isinstance(start, Rational) and isinstance(stop, Rational) and frame_time_s:
            period = round(float(frame_time_s) * start.denominator)
            begin = image_id * period
            fields["start_time"] = Rational(begin, start.denominator)
            fields["stop_time"] = Rational(
                begin + stop.numerator - start.numerator, stop.denominator
            )
        return fields

    def end_message(self, images_collected: int) -> Message:
        if self._end is None:
            fields: dict[str, Any] = {
                key: self._start[key]
                for key in ("series_id", "series_unique_id")
                if key in self._start.fields
            }
            return Message("end", fields)
        fields = dict(self._end.fields)
        if "images_collected" in fields:
            fields["images_collected"] = images_collected
        if "end_date" in fields and not self._keep_dates:
            fields["end_date"] = now_ms()
        return Message("end", fields)


class MessageListSource(RecordedSeries):
    """Replays messages held in memory (e.g. made in a test): every image, in order.

    See ``RecordedSeries`` for the fields that are rewritten. ``build_pool(K)`` with K
    smaller than the number of images keeps only the first K, reused in turn.
    """

    def __init__(
        self,
        messages: Iterable[Message],
        *,
        description: str = "messages",
        keep_dates: bool = False,
    ) -> None:
        messages = list(messages)
        self._images = [message for message in messages if message.type == "image"]
        others = (message for message in messages if message.type != "image")
        super().__init__(description, others, len(self._images), keep_dates=keep_dates)

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> FramePool:
        images = self._images[:pool_size]
        pool = []
        for done, image in enumerate(images, start=1):
            pixel_fields = {
                key: value
                for key, value in image.fields.items()
                if key not in PER_IMAGE_FIELDS and key != "data"
            }
            pool.append(PoolFrame(pixels=image["data"]["default"], pixel_fields=pixel_fields))
            if on_progress is not None:
                on_progress(done, len(images))
        self._use_frames(len(pool))
        return FramePool(pool)

    def _recorded_fields(self, frame: int) -> dict[str, Any]:
        image = self._images[frame]
        return {key: image[key] for key in PER_IMAGE_FIELDS if key in image.fields}
