"""Everything a reader can learn from an HDF5 file, as plain data, for comparing two files.

Object by object (following links but not leaving the file): the kind of each link and its
target, attribute names, types and values, and for datasets the HDF5 type (including
variable-length text and h5py's bool enum), shape, maximum shape, storage layout, chunks,
filters, fill value, virtual sources and the values.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

IGNORED_ROOT_ATTRIBUTES = ("file_time",)


def type_description(dtype: np.dtype, type_id: Any) -> tuple:
    string = h5py.check_string_dtype(dtype)
    enum = h5py.check_enum_dtype(dtype)
    return (
        str(dtype),
        None if string is None else (string.encoding, string.length),
        None if enum is None else sorted(enum.items()),
        type_id.get_class(),
        "variable" if string is not None and string.length is None else type_id.get_size(),
    )


def _value(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return ("float", array.shape, array.tobytes())  # NaN-safe, bit for bit
    if array.dtype.kind == "O":
        return (
            "objects",
            array.shape,
            [v if isinstance(v, bytes) else str(v) for v in array.ravel()],
        )
    return ("array", str(array.dtype), array.shape, array.tolist())


def attributes(obj: h5py.HLObject, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    result = {}
    for name in sorted(obj.attrs):
        if name in ignore:
            continue
        attribute = obj.attrs.get_id(name)
        result[name] = (
            type_description(attribute.dtype, attribute.get_type()),
            attribute.shape,
            _value(obj.attrs[name]),
        )
    return result


def _dataset(dataset: h5py.Dataset) -> dict[str, Any]:
    dcpl = dataset.id.get_create_plist()
    layout = dcpl.get_layout()
    description: dict[str, Any] = {
        "type": type_description(dataset.dtype, dataset.id.get_type()),
        "shape": dataset.shape,
        "maxshape": dataset.maxshape,
        "layout": layout,
        "chunks": dataset.chunks,
        "filters": [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())],
        "fillvalue": _value(dataset.fillvalue),
        "attributes": attributes(dataset),
    }
    if layout == h5py.h5d.VIRTUAL:
        description["sources"] = [
            (source.file_name, source.dset_name, source.vspace.get_select_bounds())
            for source in dataset.virtual_sources()
        ]
    else:
        description["value"] = _value(dataset[()]) if dataset.size else None
    return description


def file_content(path: Any) -> dict[str, Any]:
    """Every link below ``/`` with what it leads to (objects inside this file only)."""
    content: dict[str, Any] = {}
    with h5py.File(path, "r") as h5:
        content["/"] = {"attributes": attributes(h5, IGNORED_ROOT_ATTRIBUTES)}

        def walk(group: h5py.Group, prefix: str) -> None:
            for name in sorted(group):
                path_in_file = f"{prefix}/{name}"
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    content[path_in_file] = ("external", link.filename, link.path)
                    continue
                if isinstance(link, h5py.SoftLink):
                    content[path_in_file] = ("soft", link.path)
                    continue
                obj = group[name]
                if isinstance(obj, h5py.Group):
                    content[path_in_file] = {"group": attributes(obj)}
                    walk(obj, path_in_file)
                else:
                    content[path_in_file] = _dataset(obj)

        walk(h5, "")
        objects: dict[int, list[str]] = {}  # h5py hashes an object by file and address
        for path_in_file, description in content.items():
            if isinstance(description, dict) and path_in_file != "/":
                objects.setdefault(hash(h5[path_in_file].id), []).append(path_in_file)
        content["hard links"] = sorted(paths for paths in objects.values() if len(paths) > 1)
    return content


def differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """What differs between two ``file_content`` results, one line per path."""
    lines = []
    for path in sorted(set(first) | set(second)):
        if first.get(path) != second.get(path):
            lines.append(f"{path}: {first.get(path)!r:.300} != {second.get(path)!r:.300}")
    return lines
