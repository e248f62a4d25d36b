"""What makes a ``file_prefix`` one a writer can use: the one rule for everything that takes one.

The prefix names files relative to a writer's root (``<prefix>_master.h5``,
``<prefix>_data_000001.h5``). ``jfsim write`` refuses a series whose prefix breaks this
rule; ``jfsim stream``, ``jfsim simulate`` and ``jfsim serve``'s ``/start`` refuse it up front
with the same reason, so that no series is sent that its writer will not write.
"""

from __future__ import annotations

__all__ = ["MAX_COMPONENT_BYTES", "file_prefix_problem"]

#: The longest directory or file-name part of a prefix, in UTF-8 bytes: a file system takes
#: 255, less the longest name the writer adds (``_data_000001.h5`` and its temporary suffix).
MAX_COMPONENT_BYTES = 200


def file_prefix_problem(file_prefix: str) -> str | None:
    """Why ``file_prefix`` cannot name files inside a writer's root, or None when it can."""
    if "\x00" in file_prefix:
        return "contains a NUL character"
    if "\\" in file_prefix:
        return "contains a backslash"
    if any(ord(char) < 0x20 for char in file_prefix):
        return "contains a control character"
    if file_prefix.startswith("/") or file_prefix.startswith("~"):
        return "is absolute"
    if file_prefix.endswith("/") or file_prefix.strip() == "":
        return "names a directory, not a file prefix"
    parts = file_prefix.split("/")
    if any(part == ".." for part in parts):
        return "climbs out of the root with '..'"
    if any(part == "" for part in parts):
        return "contains an empty path component ('//')"
    if parts[-1] in (".",):
        return "ends with '.'"
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in parts)
    if longest > MAX_COMPONENT_BYTES:
        return f"has a path component of {longest} bytes (at most {MAX_COMPONENT_BYTES})"
    return None
