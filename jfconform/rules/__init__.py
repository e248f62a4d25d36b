"""Rule families; importing this package registers every rule (one module per family)."""

from jfconform.rules import (
    cxi,
    h5,
    jf,
    jf_extensions,
    nxg,
    nxmx,
    nxmx_detector,
    nxr,
    nxt,
    rd,
    stream,
    truth,
)

__all__ = [
    "cxi",
    "h5",
    "jf",
    "jf_extensions",
    "nxg",
    "nxmx",
    "nxmx_detector",
    "nxr",
    "nxt",
    "rd",
    "stream",
    "truth",
]
