"""Issue 9: hypothesis over start-message fields, driving one real ``jfsim write`` process.

Every example changes one to three start fields to values of the type the schema allows
(so they pass the decoder) but of hostile size or content, sends start, two images and end,
and checks the invariants: the writer process stays up, the series is refused (no file) or
completed (a master that opens), never failed or left half-written, nothing is created
outside the root (a link in the root points outside it), and no traceback is logged.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import threading
import urllib.request
from datetime import timezone
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - bitshuffle for reading images
import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st
from writer_helpers import Sender, jfsim_command, make_series, tiny_experiment, tree

from jfsim.protocol import ProtocolError
from jfsim.protocol.schema import SCHEMA, WireType

EXAMPLES = int(os.environ.get("JFSIM_FUZZ_EXAMPLES", "60"))
STATUS_TIMEOUT_S = 60.0
#: The writer's start-up log line names the HTTP port it bound (``-H 0``: any free port).
HTTP_PORT = re.compile(r"http port (\d+)")
#: Fields whose value is a pixel array or table: not fuzzed here (the decoder tests do).
NOT_FUZZED = {WireType.CHANNELS, WireType.TYPED_ARRAY}
FUZZED_FIELDS = sorted(
    name for name, spec in SCHEMA["start"].items() if spec.wire_type not in NOT_FUZZED
)

_texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "\x00", "a\x00b", "../x", "/abs/x", "link/x", "link/../../outside/x", "a//b", "é/ü"]
    ),
)
_uints = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 8, 12, 16, 32, 2**31, 2**32, 2**63, 2**64 - 1, 10**7, 10**8]),
    st.integers(0, 2**64 - 1),
)
_ints = st.integers(-(2**63), 2**63 - 1)
_floats = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, math.inf, -math.inf, math.nan, 1e308, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_scalars = st.one_of(_uints, _ints, _floats, _texts, st.booleans())
_axis = st.fixed_dictionaries(
    {"start": st.one_of(_floats, _texts), "increment": st.one_of(_floats, _texts)},
    optional={"vector": st.lists(st.one_of(_floats, _ints), max_size=4)},
)
_BY_TYPE = {
    WireType.UINT: _uints,
    WireType.INT: _ints,
    WireType.FLOAT: _floats,
    WireType.TEXT: _texts,
    WireType.BOOL: st.booleans(),
    WireType.TEXT_LIST: st.lists(_texts, max_size=3),
    WireType.FLOAT_LIST: st.lists(_floats, max_size=4),
    WireType.FLOAT_MAP: st.dictionaries(_texts, _floats, max_size=3),
    WireType.AXIS_MAP: st.dictionaries(_texts, _axis, min_size=1, max_size=2),
    WireType.MAP: st.dictionaries(_texts, _scalars, max_size=4),
    WireType.DATETIME: st.datetimes(timezones=st.just(timezone.utc)),
    WireType.ANY: st.one_of(
        _scalars,
        st.dictionaries(_texts, st.dictionaries(_texts, _scalars, max_size=3), max_size=2),
    ),
}
#: (field, value) changes: the value's type follows the field's row in the schema.
changes = st.lists(
    st.sampled_from(FUZZED_FIELDS).flatmap(
        lambda name: st.tuples(st.just(name), _BY_TYPE[SCHEMA["start"][name].wire_type])
    ),
    min_size=1,
    max_size=3,
)


class WriterProcess:
    """One ``jfsim write`` service behind a PUSH socket, with its HTTP status."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.outside = base / "outside"
        self.root.mkdir()
        self.outside.mkdir()
        (self.root / "link").symlink_to(self.outside)
        self.sender = Sender()
        endpoint = self.sender.endpoint
        options = ["-R", str(self.root), "-H", "0", "--json"]
        # the log goes to a file: a pipe nobody reads fills up and blocks the writer
        self.log_path = base / "writer.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [*jfsim_command(), "write", *options, endpoint],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.messages_sent = 0
        self.history: list = []  # the changes of every example, for failure messages

    @functools.cached_property
    def http_port(self) -> int:
        """The port ``-H 0`` bound, from the writer's start-up log line."""
        for _ in range(1200):
            found = HTTP_PORT.search(self.log_path.read_text(encoding="utf-8"))
            if found:
                return int(found.group(1))
            threading.Event().wait(0.05)
        raise AssertionError(f"the writer never logged its HTTP port: {self.log_path.read_text()}")

    def status(self) -> dict | None:
        url = f"http://127.0.0.1:{self.http_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                return json.loads(reply.read())
        except OSError:
            return None

    def send_and_wait(self, frames: list[bytes]) -> dict:
        """Send ``frames`` and return the status once the writer has handled all of them."""
        self.sender.send_all(frames)
        self.messages_sent += len(frames)
        event = threading.Event()
        for _ in range(int(STATUS_TIMEOUT_S / 0.02)):
            assert self.process.poll() is None, "the writer process died"
            status = self.status()
            if status and status["messages_received"] == self.messages_sent:
                if status["state"] != "acquiring":
                    return status
            event.wait(0.02)
        raise AssertionError(
            f"the writer did not handle {self.messages_sent} messages; status {self.status()}; "
            f"the series before: {self.history[-2:]}; log: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self) -> tuple[int, str, str]:
        self.process.terminate()
        try:
            out, _ = self.process.communicate(timeout=120)
        finally:
            self.sender.close()
        return self.process.returncode, out, self.log_path.read_text()


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    process = WriterProcess(tmp_path_factory.mktemp("fuzz"))
    process.send_and_wait([])  # until its HTTP status answers
    yield process
    code, out, err = process.stop()
    assert "Traceback" not in err, err[-3000:]
    assert code in (0, 1, 3), err[-3000:]
    states = {summary["state"] for summary in json.loads(out)}
    assert states <= {"completed", "refused"}, states


_counter = iter(range(1_000_000))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(changes=changes)
@example(changes=[("file_prefix", "")])  # "write nothing": once killed the writer process
def test_fuzzed_start_fields_are_refused_or_written_never_worse(writer, changes):
    series_id = next(_counter) + 1
    series = make_series(
        tiny_experiment(file_prefix=f"s{series_id}/x", series_id=series_id, number_of_images=2),
        extras=False,
    )
    series.start.fields.update(dict(changes))
    for message in (*series.images, series.end):  # a consistent sender: same series ids
        for key in ("series_id", "series_unique_id"):
            message.fields[key] = series.start.fields[key]
    try:
        frames = series.encoded()
    except (ProtocolError, ValueError, TypeError, OverflowError):
        reject()  # not a wire message at all (a type the schema forbids)
    writer.history.append(changes)
    before = set(tree(writer.root))
    written_before = writer.status()["series_written"]
    status = writer.send_and_wait(frames)
    after = set(tree(writer.root))
    assert list(writer.outside.iterdir()) == []
    assert not [name for name in after if name.endswith(".tmp")], sorted(after - before)
    assert status["series_failed"] == 0, status["last_error"]
    last = status.get("last_series") or {}
    event(f"outcome: {last.get('state') if last.get('series_id') == series_id else 'other'}")
    if status["series_written"] > written_before and last["files"]:
        assert last["state"] == "completed"
        for name in last["files"]:  # every file opens; a master describes the series
            with h5py.File(writer.root / name, "r") as h5:
                assert "data" in h5["entry"]
                if name.endswith("_master.h5"):
                    assert h5["entry/instrument/detector/detectorSpecific/nimages"][()] >= 0
    else:
        # refused, a start the decoder did not accept, or a series that writes no file
        # (empty prefix, layout "nofile"): nothing new on disk
        assert after == before, sorted(after - before)
