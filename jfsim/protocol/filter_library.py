"""hdf5plugin's compiled bitshuffle filter library, loaded and checked once, at import.

jfsim calls LZ4 and the bitshuffle pipeline inside the shared library that hdf5plugin ships
for its bitshuffle HDF5 filter (``libh5bshuf``), through ctypes: that is how its chunks are
byte-identical to the filter's. These C symbols are not hdf5plugin's Python API, and a
release may drop or rename them. So the library is loaded when ``jfsim.protocol`` is
imported and every symbol jfsim binds is looked up there; a missing one is an
``ImportError`` naming the hdf5plugin version and the versions jfsim supports (pinned in
``pyproject.toml``), not an ``AttributeError`` in the middle of a run.
"""

from __future__ import annotations

import ctypes
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = [
    "FILTER_LIBRARY",
    "SUPPORTED_HDF5PLUGIN",
    "SYMBOLS",
    "FilterLibraryError",
    "load_filter_library",
]

#: The hdf5plugin releases whose library has the symbols below (as pinned in pyproject.toml).
SUPPORTED_HDF5PLUGIN = ">=4.1,<8"
#: Every C function jfsim binds (``lz4_blocks``, ``bitshuffle_native``).
SYMBOLS = (
    "LZ4_versionNumber",
    "LZ4_compress_default",
    "LZ4_decompress_safe",
    "LZ4_compressBound",
    "bshuf_compress_lz4",
    "bshuf_decompress_lz4",
    "bshuf_compress_lz4_bound",
)


class FilterLibraryError(ImportError):
    """hdf5plugin's bitshuffle library is missing or lacks a symbol jfsim binds."""


def _hdf5plugin_version() -> str:
    try:
        return version("hdf5plugin")
    except PackageNotFoundError:
        return "not installed"


def _library_path() -> str | None:
    """The filter library's path, found without importing hdf5plugin (which loads h5py)."""
    spec = importlib.util.find_spec("hdf5plugin")
    if spec is None:
        return None
    if spec.origin is not None:
        candidate = Path(spec.origin).parent / "plugins" / "libh5bshuf.so"
        if candidate.is_file():
            return str(candidate)
    import hdf5plugin

    path: str | None = hdf5plugin.get_config().registered_filters.get("bshuf")
    return path


def load_filter_library() -> ctypes.CDLL:
    """Load the library and check that it has every symbol of ``SYMBOLS``.

    Raises:
        FilterLibraryError: no library, a library that does not load, or missing symbols;
            the message names hdf5plugin's version and what to install.
    """
    remedy = f"install a supported release: pip install 'hdf5plugin{SUPPORTED_HDF5PLUGIN}'"
    found = f"hdf5plugin {_hdf5plugin_version()}"
    path = _library_path()
    if path is None:
        raise FilterLibraryError(f"{found} has no bitshuffle filter library; {remedy}")
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise FilterLibraryError(f"{found}: cannot load {path} ({error}); {remedy}") from error
    missing = [symbol for symbol in SYMBOLS if not hasattr(library, symbol)]
    if missing:
        raise FilterLibraryError(
            f"{found}: {path} lacks {', '.join(missing)}, which jfsim calls; {remedy}"
        )
    return library


FILTER_LIBRARY = load_filter_library()
