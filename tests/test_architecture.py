"""The few rules of the architecture that must hold, checked on the source itself.

* jfconform (the judge) never imports jfsim's writer, encoder, streamer or simulator: a bug
  shared by the writer and the judge would otherwise pass unseen.
* jfsim.protocol and jfsim.geometry do no I/O: no sockets, files or HDF5.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JUDGE_ALLOWED_FROM_JFSIM = {"jfsim.units", "jfsim.geometry"}
IO_MODULES = {"zmq", "h5py", "socket", "http", "urllib", "subprocess"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", _sources("jfconform", "fixtures"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_judge_is_independent_of_jfsim(path: Path):
    for name in _imports(path):
        if name == "jfsim" or name.startswith("jfsim."):
            allowed = any(name == a or name.startswith(a + ".") for a in JUDGE_ALLOWED_FROM_JFSIM)
            assert allowed, (
                f"{path.relative_to(ROOT)} imports {name}; "
                "the judge must derive its expectations from the specifications"
            )


@pytest.mark.parametrize(
    "path", _sources("jfsim/protocol", "jfsim/geometry"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_protocol_and_geometry_do_no_io(path: Path):
    for name in _imports(path):
        assert name.split(".")[0] not in IO_MODULES, (
            f"{path.relative_to(ROOT)} imports {name} (no I/O here)"
        )
    source = path.read_text(encoding="utf-8")
    assert "open(" not in source.replace("_open(", ""), f"{path.relative_to(ROOT)} opens files"


@pytest.mark.parametrize(
    "path",
    [
        *_sources("jfconform/stream"),
        ROOT / "jfconform" / "rules" / "stream.py",
        *sorted((ROOT / "fixtures").glob("stream_*.py")),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_stream_judge_and_its_corpus_import_nothing_of_jfsim(path: Path):
    """Stricter than the rule above: the stream judge decodes messages itself (cbor2), and
    the corpus is built with cbor2 and h5py, so neither can share a bug with jfsim's codec."""
    for name in _imports(path):
        assert not (name == "jfsim" or name.startswith("jfsim.")), (
            f"{path.relative_to(ROOT)} imports {name}"
        )


def test_the_stream_judge_decodes_with_cbor2():
    assert "cbor2" in _imports(ROOT / "jfconform" / "stream" / "wire.py")
