"""The NXprocess groups ``_process.h5`` holds, one per analysis step: a common head
(program, version, date, sequence_index, the step's settings as a JSON NXnote) and text
datasets, written the same way for every step."""

from __future__ import annotations

from datetime import datetime, timezone

import h5py
import numpy as np

from jfsim import __version__
from jfsim.writer.nxmx import iso_time

__all__ = ["nx_process", "write_text"]


def nx_process(
    entry: h5py.Group,
    name: str,
    *,
    program: str,
    sequence_index: int,
    description: str,
    configuration: str,
) -> h5py.Group:
    """Create ``entry/name`` as an NXprocess with its head and ``configuration`` NXnote
    (``description`` says what the JSON ``configuration`` is); returns the group."""
    process = entry.create_group(name)
    process.attrs["NX_class"] = "NXprocess"
    write_text(process, "program", program)
    write_text(process, "version", __version__)
    write_text(process, "date", iso_time(datetime.now(timezone.utc)))
    process.create_dataset("sequence_index", data=np.int64(sequence_index))
    note = process.create_group("configuration")
    note.attrs["NX_class"] = "NXnote"
    write_text(note, "type", "application/json")
    write_text(note, "description", description)
    write_text(note, "data", configuration)
    return process


def write_text(group: h5py.Group, name: str, value: str) -> None:
    """A variable-length UTF-8 string dataset."""
    group.create_dataset(name, data=value, dtype=h5py.string_dtype())
