"""hdf5plugin's bitshuffle library is checked when jfsim.protocol is imported: jfsim binds C
symbols that are not hdf5plugin's API, so a release without them must fail loudly, at once."""

from __future__ import annotations

import _ctypes
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

from jfsim.protocol.filter_library import FILTER_LIBRARY, SUPPORTED_HDF5PLUGIN, SYMBOLS

ROOT = Path(__file__).resolve().parents[2]


def _pinned_hdf5plugin() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [Requirement(d) for d in project["dependencies"] if d.startswith("hdf5plugin")]
    assert len(pins) == 1
    return pins[0]


def test_the_pin_has_an_upper_bound_and_the_installed_release_meets_it():
    pin = _pinned_hdf5plugin()
    assert str(pin.specifier) == str(Requirement(f"hdf5plugin{SUPPORTED_HDF5PLUGIN}").specifier)
    assert any(spec.operator == "<" for spec in pin.specifier), "no upper bound"
    assert pin.specifier.contains(version("hdf5plugin"))


def test_the_installed_library_has_every_symbol_jfsim_binds():
    assert all(hasattr(FILTER_LIBRARY, symbol) for symbol in SYMBOLS)


def test_a_library_without_the_symbols_stops_the_import_with_a_clear_message(tmp_path: Path):
    """A stand-in hdf5plugin whose filter library is a real shared object without LZ4."""
    package = tmp_path / "hdf5plugin"
    (package / "plugins").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugins" / "libh5bshuf.so").symlink_to(_ctypes.__file__)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", "import jfsim.protocol"],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("jfsim.protocol.filter_library.FilterLibraryError: hdf5plugin "), last
    assert "lacks LZ4_versionNumber, LZ4_compress_default" in last
    assert f"pip install 'hdf5plugin{SUPPORTED_HDF5PLUGIN}'" in last
