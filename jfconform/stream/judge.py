"""The stream judge: feed it messages as they arrive, ask it for findings at the end.

``StreamJudge(n_sockets, options)``; ``feed(socket, data, arrival_s)`` for every message, in
the order each socket delivered them; ``finish(stop)`` returns a :class:`JudgeResult` with
the issues of each socket and the statistics. Encoding rules come from
:mod:`jfconform.stream.wire`, field rules from :mod:`jfconform.stream.fields` and array
rules from :mod:`jfconform.stream.arrays`. The order of a series (start, images, end) is
judged here, per socket and per series across sockets.

Memory stays bounded whatever arrives. Image ids live in one bit per id, up to
:data:`~jfconform.stream.state.MAX_TRACKED_IDS`. At most :data:`MAX_SERIES` series are
remembered (:mod:`jfconform.stream.state`). Each rule keeps
``max_findings_per_rule`` issues per socket and only counts the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jfconform.model import Issue, Severity
from jfconform.stream.arrays import ArrayInfo, check_array
from jfconform.stream.fields import (
    IMAGE_DTYPES,
    MESSAGE_FIELDS,
    is_array,
    is_map,
    is_uint,
    kind_problem,
)
from jfconform.stream.state import (
    FindingsLog,
    SeriesKey,
    SeriesState,
    SocketState,
    same_series,
)
from jfconform.stream.timing import ArrivalTimes
from jfconform.stream.wire import decode_message

__all__ = ["JudgeOptions", "JudgeResult", "StopReason", "StreamJudge"]

Problem = tuple[str, Issue]

#: Series remembered at once; older finished ones are forgotten.
MAX_SERIES = 256
#: hc in eV·Å (CODATA 2018), for incident_energy × incident_wavelength.
HC_EV_ANGSTROM = 12398.419843320026
#: Relative tolerance of energy × wavelength = hc.
ENERGY_WAVELENGTH_TOLERANCE = 1e-3


class StopReason:
    """Why the judge stopped reading (for the end-of-input rules)."""

    END_OF_INPUT = "end of input"
    SERIES_ENDED = "series ended"
    TIMEOUT = "timeout"
    MAX_MESSAGES = "--max-messages"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    """How strictly to judge.

    Attributes:
        complete_series: False for a subscriber (preview/metadata) or an excerpt, which may
            join after the start and leave before the end: missing starts and ends become
            information, and holes and end counts are not judged.
        decompress: LZ4-decode every compressed array (slower; finds corrupt payloads).
        min_rate_hz: judge the image rate against this (STR-027); None: do not.
        max_pause_s: judge pauses between messages against this (STR-028); None: do not.
        max_findings_per_rule: issues kept per rule and socket; the rest are counted.
        timeout_s: the silence that ends a live run, for messages (None for files).
    """

    complete_series: bool = True
    decompress: bool = False
    min_rate_hz: float | None = None
    max_pause_s: float | None = None
    max_findings_per_rule: int = 100
    timeout_s: float | None = None


@dataclass(slots=True)
class JudgeResult:
    """Issues per socket (rule ID, issue) and the statistics of the run."""

    issues: list[list[Problem]]
    statistics: dict[str, Any]


class StreamJudge:
    """Judges the messages of ``n_sockets`` sockets (or recordings) of one stream."""

    def __init__(self, n_sockets: int, options: JudgeOptions | None = None) -> None:
        if n_sockets < 1:
            raise ValueError("the judge needs at least one socket")
        self.options = options or JudgeOptions()
        self._findings = FindingsLog(n_sockets, self.options.max_findings_per_rule)
        self._sockets = [SocketState() for _ in range(n_sockets)]
        self._series: dict[SeriesKey, SeriesState] = {}
        self._times = ArrivalTimes()

    # ------------------------------------------------------------------ feeding

    @property
    def messages(self) -> int:
        return sum(state.messages for state in self._sockets)

    def series_ended_everywhere(self) -> bool:
        """True once every socket has delivered something and no series is open on any."""
        return all(
            state.messages and state.open is None and state.closed for state in self._sockets
        )

    def feed(
        self,
        socket: int,
        data: bytes | memoryview,
        arrival_s: float | None = None,
        *,
        parts: int = 1,
    ) -> None:
        """Judge one message of ``socket`` (``arrival_s``: its arrival time, if live;
        ``parts``: its ZeroMQ frames, of which ``data`` is the first)."""
        state = self._sockets[socket]
        index = state.messages
        state.messages += 1
        state.bytes += len(data)
        where = f"#{index}"
        if parts != 1:
            self._add(
                socket,
                "STR-001",
                Issue(where, f"{parts} ZeroMQ frames; a message is one frame (judging the first)"),
            )
        decoded = decode_message(data, where)
        for rule_id, issue in decoded.problems:
            self._findings.add(socket, rule_id, issue)
        message_type = decoded.type or "?"
        state.types[message_type] += 1
        if arrival_s is not None:
            self._arrival(socket, state, arrival_s, message_type == "image", where)
        fields = decoded.fields
        if fields is None or decoded.type not in MESSAGE_FIELDS:
            return
        if message_type == "image" and is_uint(fields.get("image_id")):
            where = f"#{index} image {fields['image_id']}"
        else:
            where = f"#{index} {message_type}"
        self._fields(socket, message_type, fields, where)
        judge = getattr(self, f"_{message_type}")
        judge(socket, state, fields, where)

    def unreadable(self, socket: int, size_bytes: int, reason: str) -> None:
        """Count the unreadable rest of an input as one message that is not CBOR."""
        state = self._sockets[socket]
        where = f"#{state.messages}"
        state.messages += 1
        state.bytes += size_bytes
        state.types["?"] += 1
        self._add(
            socket,
            "STR-001",
            Issue(where, f"the last {size_bytes} bytes are no CBOR item ({reason}); not read on"),
        )

    def _arrival(
        self, socket: int, state: SocketState, now_s: float, is_image: bool, where: str
    ) -> None:
        pause = self._times.add(now_s, is_image)
        state.times.add(now_s, is_image)
        limit = self.options.max_pause_s
        if limit is not None and pause is not None and pause > limit:
            self._findings.add(
                socket,
                "STR-028",
                Issue(where, f"{pause:.3f} s passed since the previous message (> {limit:g} s)"),
            )

    def _add(self, socket: int, rule_id: str, issue: Issue) -> None:
        self._findings.add(socket, rule_id, issue)

    # ------------------------------------------------------------------ fields

    def _fields(
        self, socket: int, message_type: str, fields: Mapping[str, Any], where: str
    ) -> None:
        for name, spec in MESSAGE_FIELDS[message_type].items():
            if name not in fields:
                if spec.required:
                    self._add(socket, "STR-008", Issue(where, f"{message_type} has no {name!r}"))
                continue
            value = fields[name]
            problem = kind_problem(spec.kind, value)
            if problem is None and name == "image_dtype" and value not in IMAGE_DTYPES:
                problem = f"is {value!r}, not one of {', '.join(IMAGE_DTYPES)}"
            if problem is not None:
                severity = None if spec.confirmed else Severity.WARNING
                self._add(socket, "STR-007", Issue(f"{where} {name}", problem, severity=severity))

    def _arrays(self, socket: int, channels: Any, where: str) -> dict[str, ArrayInfo | None] | None:
        """Check every channel of a CHANNELS field; None when it is not a map."""
        if not is_map(channels):
            return None
        infos: dict[str, ArrayInfo | None] = {}
        for name, value in channels.items():
            problems, info = check_array(
                value, f"{where} {name}", decompress=self.options.decompress
            )
            for rule_id, issue in problems:
                self._add(socket, rule_id, issue)
            infos[str(name)] = info
        return infos

    def _shape(
        self,
        socket: int,
        series: SeriesState,
        infos: Mapping[str, ArrayInfo | None],
        where: str,
        *,
        check_dtype: bool,
    ) -> None:
        """STR-013: arrays of ``image_size_y`` × ``image_size_x`` (and ``image_dtype``)."""
        for name, info in infos.items():
            if info is None:
                continue
            if series.image_size is not None and info.dims != series.image_size:
                height, width = series.image_size
                self._add(
                    socket,
                    "STR-013",
                    Issue(
                        f"{where} {name}",
                        f"dims {list(info.dims)}; the start announced [{height}, {width}] "
                        "(image_size_y, image_size_x)",
                    ),
                )
            if check_dtype and series.image_dtype and info.element_type != series.image_dtype:
                self._add(
                    socket,
                    "STR-013",
                    Issue(
                        f"{where} {name}",
                        f"{info.element_type} pixels; the start announced image_dtype "
                        f"{series.image_dtype!r}",
                    ),
                )

    # ------------------------------------------------------------------ series

    def _series_of(self, key: SeriesKey) -> SeriesState:
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= MAX_SERIES:
                oldest = next(iter(self._series))
                del self._series[oldest]
            series = self._series[key] = SeriesState(key)
        return series

    @staticmethod
    def _key(fields: Mapping[str, Any]) -> SeriesKey:
        series_id = fields.get("series_id")
        unique_id = fields.get("series_unique_id")
        return (
            series_id if is_uint(series_id) else None,
            unique_id if isinstance(unique_id, str) else None,
        )

    def _start(
        self, socket: int, state: SocketState, fields: Mapping[str, Any], where: str
    ) -> None:
        key = self._key(fields)
        if state.open is not None:
            if state.open == key:
                self._add(
                    socket, "STR-022", Issue(where, "a second start while the series is open")
                )
            else:
                self._end_missing(socket, state.open, where, "a new series started")
        if key in state.closed:
            self._add(socket, "STR-022", Issue(where, "start after this series' end"))
        pending = state.before_start.pop(key, None)
        if pending is not None:
            label, count = pending
            self._add(
                socket,
                "STR-022",
                Issue(
                    where, f"start arrives after {count} message(s) of its series (from {label})"
                ),
            )
        state.open = key
        state.last_image_id = None
        series = self._series_of(key)
        if not series.started:
            series.started = True
            self._learn_start(series, fields)
            self._start_values(socket, fields, where)
        masks = self._arrays(socket, fields.get("pixel_mask"), f"{where} pixel_mask")
        self._shape(socket, series, masks or {}, where, check_dtype=False)
        self._arrays(socket, fields.get("flatfield"), f"{where} flatfield")

    @staticmethod
    def _learn_start(series: SeriesState, fields: Mapping[str, Any]) -> None:
        number = fields.get("number_of_images")
        series.number_of_images = number if is_uint(number) else None
        width, height = fields.get("image_size_x"), fields.get("image_size_y")
        if is_uint(width) and is_uint(height):
            series.image_size = (height, width)
        dtype = fields.get("image_dtype")
        series.image_dtype = dtype if dtype in IMAGE_DTYPES else None
        channels = fields.get("channels")
        if is_array(channels) and all(isinstance(c, str) for c in channels):
            series.channels = tuple(channels)

    def _start_values(self, socket: int, fields: Mapping[str, Any], where: str) -> None:
        """STR-016: values that must agree with each other."""
        energy, wavelength = fields.get("incident_energy"), fields.get("incident_wavelength")
        if isinstance(energy, float) and isinstance(wavelength, float):
            product = energy * wavelength
            if not math.isclose(product, HC_EV_ANGSTROM, rel_tol=ENERGY_WAVELENGTH_TOLERANCE):
                self._add(
                    socket,
                    "STR-016",
                    Issue(
                        where,
                        f"incident_energy {energy:g} eV × incident_wavelength {wavelength:g} Å "
                        f"= {product:.1f} eV·Å, not hc = {HC_EV_ANGSTROM:.1f}",
                    ),
                )
        for name in ("pixel_size_x", "pixel_size_y", "count_time", "frame_time"):
            value = fields.get(name)
            if isinstance(value, float) and not value > 0:
                self._add(socket, "STR-016", Issue(where, f"{name} is {value:g}; it must be > 0"))

    def _image(
        self, socket: int, state: SocketState, fields: Mapping[str, Any], where: str
    ) -> None:
        key = self._key(fields)
        if state.open is None:
            self._outside_series(socket, state, key, where, "image")
        else:
            if not same_series(key, state.open):
                self._changed(socket, state.open, key, where)
            key = state.open
        series = self._series_of(key)
        infos = self._arrays(socket, fields.get("data"), f"{where} data")
        if infos is not None:
            if series.channels is not None and tuple(infos) != series.channels:
                self._add(
                    socket,
                    "STR-015",
                    Issue(
                        f"{where} data",
                        f"channels {list(infos)}; the start announced {list(series.channels)}",
                    ),
                )
            self._shape(socket, series, infos, where, check_dtype=True)
        image_id = fields.get("image_id")
        if is_uint(image_id):
            self._image_id(socket, state, series, key, image_id, where)

    def _image_id(
        self,
        socket: int,
        state: SocketState,
        series: SeriesState,
        key: SeriesKey,
        image_id: int,
        where: str,
    ) -> None:
        """STR-018, -019, -020 for one image id of ``series`` on ``socket``."""
        if series.number_of_images is not None and image_id >= series.number_of_images:
            self._add(
                socket,
                "STR-019",
                Issue(where, f"image_id {image_id} ≥ number_of_images {series.number_of_images}"),
            )
        if not series.ids.add(image_id):
            self._add(socket, "STR-018", Issue(where, f"image_id {image_id} arrived before"))
        elif (
            state.last_image_series == key
            and state.last_image_id is not None
            and image_id < state.last_image_id
        ):
            self._add(
                socket,
                "STR-020",
                Issue(where, f"image_id {image_id} after {state.last_image_id} on this socket"),
            )
        state.last_image_id = image_id
        state.last_image_series = key

    def _end(self, socket: int, state: SocketState, fields: Mapping[str, Any], where: str) -> None:
        key = self._key(fields)
        if state.open is None:
            if key in state.closed:
                self._add(socket, "STR-022", Issue(where, "a second end for this series"))
            else:
                self._outside_series(socket, state, key, where, "end")
        else:
            if not same_series(key, state.open):
                self._changed(socket, state.open, key, where)
            key = state.open
        state.open = None
        state.closed.add(key)
        series = self._series_of(key)
        collected = fields.get("images_collected")
        if series.end_where is None:
            series.end_where = (socket, where)
            if is_uint(collected):
                series.images_collected = collected

    def _calibration(
        self, socket: int, state: SocketState, fields: Mapping[str, Any], where: str
    ) -> None:
        if state.open is None:
            self._add(
                socket, "STR-022", Issue(where, "calibration outside a series (no open start)")
            )

    def _metadata(
        self, socket: int, state: SocketState, fields: Mapping[str, Any], where: str
    ) -> None:
        """A metadata message of Jungfraujoch's metadata stream bundles the fields of several
        images; their ``image_id`` values count as the images of the open series."""
        if state.open is None:
            key = self._key(fields)
            self._outside_series(socket, state, key, where, "metadata")
        else:
            key = state.open
        series = self._series_of(key)
        images = fields.get("images")
        if not is_array(images):
            return
        for entry in images:
            image_id = entry.get("image_id") if is_map(entry) else None
            if is_uint(image_id):
                self._image_id(socket, state, series, key, image_id, f"{where} image {image_id}")

    def _outside_series(
        self, socket: int, state: SocketState, key: SeriesKey, where: str, what: str
    ) -> None:
        if key in state.closed:
            self._add(socket, "STR-022", Issue(where, f"{what} after its series' end"))
            return
        label, count = state.before_start.get(key, (where, 0))
        state.before_start[key] = (label, count + 1)

    def _changed(self, socket: int, open_key: SeriesKey, key: SeriesKey, where: str) -> None:
        self._add(
            socket,
            "STR-017",
            Issue(
                where,
                f"series_id/series_unique_id {key[0]!r}/{key[1]!r}; the open series is "
                f"{open_key[0]!r}/{open_key[1]!r}",
            ),
        )

    def _relaxed(self) -> Severity | None:
        """Severity of start/end findings for subscribers and excerpts (None: the rule's)."""
        return None if self.options.complete_series else Severity.INFO

    def _end_missing(self, socket: int, key: SeriesKey, where: str, why: str) -> None:
        series_id, unique_id = key
        self._add(
            socket,
            "STR-024",
            Issue(
                where,
                f"series {series_id!r}/{unique_id!r} got no end on this socket ({why})",
                severity=self._relaxed(),
            ),
        )

    # ------------------------------------------------------------------ the end

    def finish(self, stop: str = StopReason.END_OF_INPUT) -> JudgeResult:
        """The findings of the end of the run, then everything found."""
        options = self.options
        for socket, state in enumerate(self._sockets):
            if not state.messages and stop not in (StopReason.MAX_MESSAGES, StopReason.INTERRUPTED):
                silence = (
                    f"no message within {options.timeout_s:g} s"
                    if stop == StopReason.TIMEOUT and options.timeout_s is not None
                    else "no message at all"
                )
                self._add(socket, "STR-026", Issue("(stream)", silence))
            if state.open is not None:
                if stop == StopReason.MAX_MESSAGES:
                    why, severity = "the run stopped at --max-messages", Severity.INFO
                elif stop == StopReason.INTERRUPTED:
                    why, severity = "the run was interrupted", Severity.INFO
                else:
                    why, severity = f"{stop} after message #{state.messages - 1}", None
                series_id, unique_id = state.open
                self._add(
                    socket,
                    "STR-024",
                    Issue(
                        "(end of input)",
                        f"series {series_id!r}/{unique_id!r} got no end on this socket ({why})",
                        severity=severity or self._relaxed(),
                    ),
                )
            for (series_id, unique_id), (label, count) in state.before_start.items():
                self._add(
                    socket,
                    "STR-021",
                    Issue(
                        label,
                        f"{count} message(s) of series {series_id!r}/{unique_id!r} and no start",
                        severity=self._relaxed(),
                    ),
                )
        if options.complete_series:
            for series in self._series.values():
                self._counts(series)
        self._rate()
        return JudgeResult(self._findings.close(), self._statistics(stop))

    def _counts(self, series: SeriesState) -> None:
        """STR-023 and STR-025 for a series that was started and ended."""
        if not series.started or series.end_where is None:
            return
        socket, where = series.end_where
        arrived = series.ids.count
        collected = series.images_collected
        if collected is not None and collected != arrived:
            self._add(
                socket,
                "STR-023",
                Issue(where, f"images_collected {collected}; {arrived} distinct image ids arrived"),
            )
        number = series.number_of_images
        if collected is not None and number is not None and collected > number:
            self._add(
                socket,
                "STR-023",
                Issue(where, f"images_collected {collected} > number_of_images {number}"),
            )
        expected = collected if collected is not None else number
        if expected:
            n_missing, first = series.ids.missing_below(expected)
            if n_missing:
                quoted = ", ".join(str(i) for i in first) + (
                    ", ..." if n_missing > len(first) else ""
                )
                self._add(
                    socket,
                    "STR-025",
                    Issue(
                        where,
                        f"{n_missing} of image ids 0 … {expected - 1} never arrived ({quoted})",
                    ),
                )

    def _rate(self) -> None:
        minimum = self.options.min_rate_hz
        if minimum is None:
            return
        rate = self._times.image_rate_hz
        if rate is None:
            message = f"fewer than 2 images arrived; --min-rate {minimum:g} Hz cannot be met"
        elif rate < minimum:
            message = f"images arrived at {rate:.1f} Hz, below --min-rate {minimum:g} Hz"
        else:
            return
        self._add(0, "STR-027", Issue("(stream)", message))

    def _statistics(self, stop: str) -> dict[str, Any]:
        times = self._times
        duration = (
            times.last_s - times.first_s
            if times.first_s is not None and times.last_s is not None
            else None
        )
        return {
            "stopped_by": stop,
            "messages": self.messages,
            "bytes": sum(state.bytes for state in self._sockets),
            "by_type": dict(sum((state.types for state in self._sockets), Counter())),
            "per_socket": [
                {
                    "messages": state.messages,
                    "bytes": state.bytes,
                    "by_type": dict(state.types),
                    "image_rate_hz": state.times.image_rate_hz,
                }
                for state in self._sockets
            ],
            "duration_s": duration,
            "image_rate_hz": times.image_rate_hz,
            "pause_mean_ms": times.pauses.total_s / times.pauses.count * 1e3
            if times.pauses.count
            else None,
            "pause_p99_ms": times.pauses.percentile_s(99.0) * 1e3 if times.pauses.count else None,
            "pause_max_ms": times.pauses.longest_s * 1e3 if times.pauses.count else None,
            "decompressed": self.options.decompress,
        }
