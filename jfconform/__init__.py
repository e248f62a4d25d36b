"""jfconform: an independent judge of NXmx / Jungfraujoch HDF5 files.

:func:`check` does what ``jfconform check`` does and returns a :class:`Report`, as
:func:`judge_stream` does for ``jfconform stream``; findings are data (:class:`Finding`)
made by registered rules with stable IDs (:func:`list_rules`), and :func:`render` turns a
report into text, JSON or JUnit XML.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jfsim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from jfconform.api import Report, UsageError, check, judge_stream, list_rules
from jfconform.engine import CheckOptions, FileReport, check_file, check_files
from jfconform.model import Finding, Severity
from jfconform.report import render
from jfconform.truth import TruthThresholds

__all__ = [
    "CheckOptions",
    "FileReport",
    "Finding",
    "Report",
    "Severity",
    "TruthThresholds",
    "UsageError",
    "__version__",
    "check",
    "check_file",
    "check_files",
    "judge_stream",
    "list_rules",
    "render",
]
