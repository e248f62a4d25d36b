"""File safety: prefixes that stay below the root, and ``*.<random>.tmp`` then rename.

Mirrors jfjoch_writer's rules: a prefix is always relative to the writer's root, must not be
absolute nor climb out with ``..``; a file is written under ``<final>.<random>.tmp`` and only
renamed to its final name once it is closed; an existing final name is never replaced unless
overwriting was asked for.

The textual check is not enough: ``root/link -> /elsewhere`` turns the harmless prefix
``link/x`` into a path outside the root. Directories are therefore checked after following
links (``realpath`` containment) when a series starts and again before every file is
created, and the one rule for directories is: missing subdirectories below the root are
created; a directory that resolves outside the root refuses the series.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path, PurePosixPath

from jfsim.experiment.file_prefix import file_prefix_problem
from jfsim.writer.errors import FileExistsRefusedError, UnsafePrefixError

TMP_SUFFIX = ".tmp"


def check_file_prefix(file_prefix: str) -> PurePosixPath:
    """The prefix as a relative POSIX path, or ``UnsafePrefixError`` saying why not.

    Args:
        file_prefix: the start message's ``file_prefix`` (relative to the writer root).
    """
    if not isinstance(file_prefix, str):
        raise UnsafePrefixError(f"file_prefix: expected text, got {type(file_prefix).__name__}")
    problem = file_prefix_problem(file_prefix)
    if problem:
        raise UnsafePrefixError(
            f"file_prefix {file_prefix!r}: {problem}; send a relative prefix such as "
            "'run1/lyso' that stays inside the writer root"
        )
    return PurePosixPath(file_prefix)


def _inside(real_root: str, real_path: str) -> bool:
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def contained_directory(root_dir: Path, directory: Path) -> Path:
    """Create ``directory`` (below ``root_dir``) if missing; refuse one that leaves the root.

    Both are resolved after following links. Each missing component is created on its own
    and checked again, so a link that appears meanwhile is caught. A component that another
    writer creates meanwhile (two writers on one root) is taken as found.

    Raises:
        UnsafePrefixError: ``directory`` resolves outside ``root_dir`` (through a link), or a
            component exists and is not a directory.
    """
    real_root = os.path.realpath(root_dir)
    real_directory = os.path.realpath(directory)
    if not _inside(real_root, real_directory):
        raise UnsafePrefixError(
            f"file_prefix directory {directory}: leads outside the root {root_dir} "
            f"(to {real_directory}, through a link); remove the link or choose another prefix"
        )
    missing: list[str] = []
    probe = real_directory
    while not os.path.isdir(probe):
        if os.path.lexists(probe):
            if os.path.isdir(probe):  # made by another writer since the test above
                break
            raise UnsafePrefixError(
                f"file_prefix directory {directory}: {probe} exists and is not a directory"
            )
        missing.append(probe)
        probe = os.path.dirname(probe)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        if not _inside(real_root, os.path.realpath(path)) or not os.path.isdir(path):
            raise UnsafePrefixError(
                f"file_prefix directory {directory}: {path} changed to leave the root "
                "while it was being created"
            )
    return Path(real_directory)


def temporary_path(final_path: Path) -> Path:
    """``<final>.<random>.tmp`` beside the final path (time stamp + random, like jfjoch)."""
    token = f"{time.time_ns() & 0xFFFFFFFF:08x}{secrets.token_hex(3)}"
    return final_path.with_name(f"{final_path.name}.{token}{TMP_SUFFIX}")


def commit_file(tmp_path: Path, final_path: Path, *, overwrite: bool) -> None:
    """Rename a closed temporary file to its final name.

    Without ``overwrite`` the rename is atomic and refuses an existing final name (hard link
    then unlink), so a file that appeared meanwhile is never replaced.
    """
    if overwrite:
        os.replace(tmp_path, final_path)
        return
    try:
        os.link(tmp_path, final_path)
    except FileExistsError as error:
        raise FileExistsRefusedError(
            f"{final_path.name}: exists already; kept the new data as {tmp_path.name} "
            "(start the writer with --overwrite to replace files)"
        ) from error
    except OSError:
        # File systems without hard links: check, then rename (small race, documented).
        if final_path.exists():
            raise FileExistsRefusedError(
                f"{final_path.name}: exists already; kept the new data as {tmp_path.name} "
                "(start the writer with --overwrite to replace files)"
            ) from None
        os.rename(tmp_path, final_path)
        return
    os.unlink(tmp_path)


def refuse_existing(final_paths: list[Path]) -> None:
    """Raise ``FileExistsRefusedError`` naming the first final path that exists already."""
    existing = [path for path in final_paths if path.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsRefusedError(
            f"{existing[0]}: exists already{more}; not written "
            "(choose a new file_prefix or start the writer with --overwrite)"
        )
