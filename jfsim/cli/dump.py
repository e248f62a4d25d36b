"""``jfsim dump``: show the messages of a .cbor file, a .cbors recording or a ZeroMQ socket."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from jfsim.errors import JfsimError
from jfsim.protocol import MESSAGE_TYPES, Message, PixelArray, ProtocolError, decode
from jfsim.protocol.summary import message_to_json
from jfsim.recording import RecordingError, iter_recording_frames

EXIT_OK = 0
EXIT_BAD_MESSAGES = 1
SOCKET_SCHEMES = ("tcp://", "ipc://", "inproc://")
SELF_DESCRIBE_TAG = b"\xd9\xd9\xf7"
#: Longest single wait for a message. Ctrl-C does not always interrupt the main thread's
#: poll: it may land just before the poll begins, or on another thread of the process (a
#: library's worker). Only a return to Python lets the interpreter raise KeyboardInterrupt,
#: so waits are sliced.
POLL_SLICE_S = 0.1
MAP_MAJOR_TYPE = 0xA0  # CBOR major type 5: maps, heads a0..bb and bf (indefinite length)
MAP_LAST_HEAD = 0xBF

EPILOG = """\
examples:
  jfsim dump run_0001.cbors                 one line per message, summary at the end
  jfsim dump image.cbor --json | head -1    JSON with pixel sum/max/NODATA count/sha256
  jfsim dump tcp://127.0.0.1:5400 --count 10 --timeout 5
  jfsim dump tcp://dcu:5600 --sub           listen to a preview/metadata PUB socket

exit status: 0 all messages decoded, 1 some were malformed, 2 the source cannot be used.
"""


class DumpError(JfsimError):
    """The dump source or its options cannot be used."""


@dataclass
class DumpTotals:
    """Counts for the closing summary."""

    per_type: Counter[str] = field(default_factory=Counter)
    bytes_per_type: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    error_bytes: int = 0
    started: float = field(default_factory=time.monotonic)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dump",
        help="print the messages of a CBOR file, recording or ZeroMQ stream",
        description=(
            "Decode Stream V2 / Jungfraujoch CBOR messages and print one line per message "
            "(type, series, image id, channels with shape, dtype, compression and size, key "
            "fields), or one JSON object per message with --json. SOURCE is a .cbor file "
            "(one message), a .cbors recording (a CBOR sequence) or a ZeroMQ endpoint "
            "(tcp://..., ipc://...) to which a PULL (or, with --sub, SUB) socket connects."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources",
        metavar="SOURCE",
        nargs="+",
        help="file path (several allowed) or one ZeroMQ endpoint",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--sub", action="store_true", help="connect a SUB socket, not PULL")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="socket: stop after S seconds without a message (default: wait forever)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="skip schema checks (types, required fields); framing is always checked",
    )
    parser.set_defaults(func=run)


def _socket_frames(endpoint: str, sub: bool, timeout_s: float | None) -> Iterator[bytes]:
    """Receive messages until the idle timeout; connects, never binds."""
    import zmq

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    with context.socket(zmq.SUB if sub else zmq.PULL) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        if sub:
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            socket.connect(endpoint)
        except zmq.ZMQError as error:
            raise DumpError(f"cannot connect to {endpoint}: {error}") from None
        while True:
            idle_until = None if timeout_s is None else time.monotonic() + timeout_s
            while not socket.poll(_slice_ms(idle_until)):
                if idle_until is not None and time.monotonic() >= idle_until:
                    return
            yield socket.recv(copy=True)


def _slice_ms(until: float | None) -> int:
    """The next poll's timeout: a slice, or what is left of the idle timeout if less."""
    if until is None:
        return int(POLL_SLICE_S * 1000)
    return max(int(min(until - time.monotonic(), POLL_SLICE_S) * 1000), 1)


def _check_tcp_port(endpoint: str) -> None:
    """ZeroMQ silently wraps out-of-range TCP ports: refuse them before connecting."""
    if not endpoint.startswith("tcp://"):
        return
    port = endpoint.rsplit(":", 1)[-1]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DumpError(f"{endpoint}: the port must be a number in 1..65535")


def _frames(source: str, args: argparse.Namespace) -> tuple[Iterator[bytes], bool]:
    """The raw messages of ``source`` and whether it is a socket."""
    if source.startswith(SOCKET_SCHEMES):
        _check_tcp_port(source)
        return _socket_frames(source, args.sub, args.timeout), True
    if "://" in source:
        raise DumpError(f"unknown endpoint scheme in '{source}'; use tcp://, ipc:// or a file path")
    path = Path(source)
    if path.is_dir():
        raise DumpError(f"{source}: is a directory; give a .cbor/.cbors file in it")
    if not path.is_file():
        raise DumpError(f"{source}: no such file; give a .cbor/.cbors file or a tcp:// endpoint")
    if not _starts_like_a_message(path):
        raise DumpError(
            f"{source}: not a CBOR message or recording (a message starts with the CBOR "
            "self-describe tag or a map); give a .cbor/.cbors file"
        )
    return iter_recording_frames(path), False


def _starts_like_a_message(path: Path) -> bool:
    """Whether the file starts as every message does: tag 55799 (``d9 d9 f7``) or a map.

    An HDF5 or text file would otherwise give one "malformed" line per byte run.
    """
    with path.open("rb") as file:
        head = file.read(3)
    return not head or head == SELF_DESCRIBE_TAG or MAP_MAJOR_TYPE <= head[0] <= MAP_LAST_HEAD


def _channels(message: Message) -> str:
    parts = []
    for key in ("data", "pixel_mask", "flatfield"):
        channels = message.get(key)
        if not isinstance(channels, dict):
            continue
        for name, array in channels.items():
            if isinstance(array, PixelArray):
                shape = "x".join(str(d) for d in array.shape)
                parts.append(
                    f"{name}={shape} {array.dtype.name} {array.compression.value} "
                    f"{len(array.payload)}B"
                )
    return " | ".join(parts)


_KEY_FIELDS = {
    "start": (
        "number_of_images",
        "image_size_x",
        "image_size_y",
        "incident_energy",
        "detector_distance",
        "file_prefix",
    ),
    "image": ("indexing_result", "spot_count", "xfel_pulse_id"),
    "end": ("images_collected", "end_date"),
    "calibration": ("name",),
}


def _key_fields(message: Message) -> str:
    parts = []
    for name in _KEY_FIELDS.get(message.type, ()):
        if name in message.fields:
            value = message.fields[name]
            if isinstance(value, float):
                parts.append(f"{name}={value:g}")
            elif isinstance(value, datetime):
                parts.append(f"{name}={value.isoformat(timespec='milliseconds')}")
            else:
                parts.append(f"{name}={value}")
    if isinstance(message.get("spots"), list):
        parts.append(f"spots={len(message['spots'])}")
    if isinstance(message.get("images"), list):
        parts.append(f"images={len(message['images'])}")
    return " ".join(parts)


def _line(index: int, size: int, message: Message) -> str:
    series = message.get("series_id", "-")
    image_id = message.get("image_id", "-")
    text = f"{index:>6}  {message.type:<11} series {series!s:<6} image {image_id!s:<7} {size:>10}B"
    details = " ".join(part for part in (_channels(message), _key_fields(message)) if part)
    return f"{text}  {details}".rstrip()


def _summary(totals: DumpTotals, out: TextIO) -> None:
    elapsed = time.monotonic() - totals.started
    print(f"{'type':<12}{'messages':>10}{'bytes':>16}", file=out)
    order = {name: rank for rank, name in enumerate(MESSAGE_TYPES)}
    for name in sorted(totals.per_type, key=lambda n: (order.get(n, len(order)), n)):
        print(f"{name:<12}{totals.per_type[name]:>10}{totals.bytes_per_type[name]:>16}", file=out)
    if totals.errors:
        print(f"{'malformed':<12}{totals.errors:>10}{totals.error_bytes:>16}", file=out)
    count = sum(totals.per_type.values()) + totals.errors
    size = sum(totals.bytes_per_type.values()) + totals.error_bytes
    print(f"{'total':<12}{count:>10}{size:>16}   in {elapsed:.2f} s", file=out)


def _show(
    args: argparse.Namespace, source: str, index: int, frame: bytes, totals: DumpTotals
) -> None:
    try:
        message = decode(frame, strict=not args.lenient)
        if args.json:
            record: dict[str, Any] = {"source": source, "index": index, "bytes": len(frame)}
            record.update(message_to_json(message))
            text = json.dumps(record, ensure_ascii=False)
        else:
            text = _line(index, len(frame), message)
    except ProtocolError as error:
        totals.errors += 1
        totals.error_bytes += len(frame)
        print(f"jfsim dump: {source}: message #{index}: {error}", file=sys.stderr)
        return
    totals.per_type[message.type] += 1
    totals.bytes_per_type[message.type] += len(frame)
    print(text, flush=True)


def _dump_source(
    args: argparse.Namespace, source: str, totals: DumpTotals, budget: int | None
) -> int:
    """Show the messages of one source; returns how many were read."""
    frames, is_socket = _frames(source, args)
    index = 0
    try:
        for frame in frames:
            _show(args, source, index, frame, totals)
            index += 1
            if budget is not None and index >= budget:
                break
    except RecordingError as error:
        totals.errors += 1
        print(f"jfsim dump: {error}; the rest of the file cannot be framed", file=sys.stderr)
    if is_socket and index == 0:
        print(f"jfsim dump: no message from {source}", file=sys.stderr)
    return index


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise DumpError(f"--count must be at least 1, got {args.count}")
    if args.timeout is not None and args.timeout <= 0:
        raise DumpError(f"--timeout must be positive seconds, got {args.timeout}")
    sockets = [s for s in args.sources if s.startswith(SOCKET_SCHEMES)]
    if sockets and len(args.sources) > 1:
        raise DumpError("give either one ZeroMQ endpoint or any number of files, not both")
    totals = DumpTotals()
    remaining = args.count
    try:
        for source in args.sources:
            remaining_before = remaining
            read = _dump_source(args, source, totals, remaining)
            if remaining_before is not None:
                remaining = remaining_before - read
                if remaining <= 0:
                    break
    except KeyboardInterrupt:
        print("jfsim dump: interrupted", file=sys.stderr)
    _summary(totals, sys.stderr if args.json else sys.stdout)
    return EXIT_BAD_MESSAGES if totals.errors else EXIT_OK
