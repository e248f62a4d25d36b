"""Where a stream's messages come from: a list of messages (a recording) or an experiment.

A source gives the start, calibration and end messages, renders and compresses the pool of
K distinct frames up front, and says which fields change from image to image (id, timing).
Image ``k`` uses pool frame ``k % K``; the fields tied to the pixels (analysis results)
travel with the frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from jfsim.protocol import Message, Rational
from jfsim.series import now_ms
from jfsim.stream.errors import StreamOptionError
from jfsim.stream.frames import PoolFrame

__all__ = ["FrameSource", "MessageListSource", "PoolProgress", "recording_source"]

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
    """What the streamer needs from wherever the images come from."""

    description: str

    def default_number_of_images(self) -> int: ...

    def images_per_file(self) -> int: ...

    def start_message(self, number_of_images: int) -> Message: ...

    def calibration_messages(self) -> Sequence[Message]: ...

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> list[PoolFrame]: ...

    def image_fields(self, image_id: int) -> dict[str, Any]: ...

    def end_message(self, images_collected: int) -> Message: ...


class MessageListSource:
    """Replays messages (e.g. a recording): its images become the pool, cycled as needed.

    Image ids are renumbered from 0; ``start_time``/``stop_time`` follow the start message's
    ``frame_time`` when the recorded images carry them; ``number_of_images`` in the start
    message and ``images_collected`` in the end message are set to what is streamed.
    """

    def __init__(
        self,
        messages: Iterable[Message],
        *,
        description: str = "messages",
        keep_images: int | None = None,
    ) -> None:
        """``keep_images``: hold at most this many image messages (the largest pool that
        will be asked for); the others are only counted."""
        self.description = description
        start: Message | None = None
        self._end: Message | None = None
        self._calibration: list[Message] = []
        self._images: list[Message] = []
        self._n_images = 0
        for message in messages:
            if message.type == "start" and start is None:
                start = message
            elif message.type == "image":
                if keep_images is None or len(self._images) < keep_images:
                    self._images.append(message)
                self._n_images += 1
            elif message.type == "calibration":
                self._calibration.append(message)
            elif message.type == "end":
                self._end = message
        if start is None:
            raise StreamOptionError(f"{description}: no start message; record a whole series")
        if not self._images:
            raise StreamOptionError(f"{description}: no image message to stream")
        self._start: Message = start
        self._templates: list[Message] = []

    def default_number_of_images(self) -> int:
        return self._n_images

    def images_per_file(self) -> int:
        return int(self._start.get("images_per_file") or 0)

    def start_message(self, number_of_images: int) -> Message:
        return Message("start", {**self._start.fields, "number_of_images": number_of_images})

    def calibration_messages(self) -> Sequence[Message]:
        return tuple(self._calibration)

    def build_pool(self, pool_size: int, on_progress: PoolProgress | None) -> list[PoolFrame]:
        self._templates = self._images[:pool_size]
        pool = []
        for done, image in enumerate(self._templates, start=1):
            pixel_fields = {
                key: value
                for key, value in image.fields.items()
                if key not in PER_IMAGE_FIELDS and key != "data"
            }
            pool.append(PoolFrame(pixels=image["data"]["default"], pixel_fields=pixel_fields))
            if on_progress is not None:
                on_progress(done, len(self._templates))
        return pool

    def image_fields(self, image_id: int) -> dict[str, Any]:
        template = self._templates[image_id % len(self._templates)]
        fields: dict[str, Any] = {}
        for key in PER_IMAGE_FIELDS:
            if key in template.fields:
                fields[key] = template[key]
        fields["image_id"] = image_id
        for key in ("series_id", "series_unique_id"):
            if key in fields and key in self._start.fields:
                fields[key] = self._start[key]
        start, stop = template.get("start_time"), template.get("stop_time")
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
            fields = {
                key: self._start[key]
                for key in ("series_id", "series_unique_id")
                if key in self._start.fields
            }
            return Message("end", fields)
        fields = dict(self._end.fields)
        if "images_collected" in fields:
            fields["images_collected"] = images_collected
        if "end_date" in fields:
            fields["end_date"] = now_ms()
        return Message("end", fields)


def recording_source(path: str | Path, *, pool_size: int | None = None) -> MessageListSource:
    """A source replaying a ``.cbors`` recording (CBOR sequence of start, images, end);
    only the first ``pool_size`` images are kept in memory."""
    from jfsim.recording import read_recording

    path = Path(path)
    if not path.is_file():
        raise StreamOptionError(
            f"recording {path}: no such file; make one with jfsim simulate -o PREFIX"
        )
    return MessageListSource(
        read_recording(path), description=f"recording {path}", keep_images=pool_size
    )
