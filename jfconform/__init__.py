"""jfconform: an independent judge of NXmx / Jungfraujoch HDF5 files.

Findings are data (:class:`Finding`), produced by registered rules with stable IDs
(:mod:`jfconform.registry`); :func:`check_file` checks one file read-only.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jfsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from jfconform.engine import CheckOptions, FileReport, check_file, check_files
from jfconform.model import Finding, Severity

__all__ = [
    "CheckOptions",
    "FileReport",
    "Finding",
    "Severity",
    "__version__",
    "check_file",
    "check_files",
]
