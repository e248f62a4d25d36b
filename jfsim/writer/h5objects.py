"""Small HDF5 objects made through h5py's low-level API: the same objects, a third of the time.

A series creates a few hundred datasets, groups and attributes (per-image analysis arrays
in every data file, virtual datasets and copies in the master). Through h5py's high-level
API each costs 0.15-0.25 ms, mostly Python bookkeeping around a cheap HDF5 call; these
helpers make the HDF5 calls directly (60-100 µs with a ``units`` attribute). Text
attributes are variable-length UTF-8 strings, exactly as ``obj.attrs[name] = "text"``
writes them.
"""

from __future__ import annotations

from collections.abc import Iterable

import h5py
import numpy as np

__all__ = ["require_group", "set_text_attribute", "write_array", "write_virtual"]

_TEXT_TYPE = h5py.h5t.py_create(h5py.string_dtype(), logical=True)
_SCALAR_SPACE = h5py.h5s.create(h5py.h5s.SCALAR)


def set_text_attribute(target: h5py.Group | h5py.Dataset, name: str, text: str) -> None:
    """``target.attrs[name] = text``, as a variable-length UTF-8 string."""
    attribute = h5py.h5a.create(target.id, name.encode(), _TEXT_TYPE, _SCALAR_SPACE)
    attribute.write(np.array(text, dtype=h5py.string_dtype()))


def require_group(parent: h5py.Group, path: str, nx_class: str, leaf_class: str | None = None):
    """The group at ``path`` below ``parent``, made with ``NX_class`` where missing
    (``leaf_class`` for the last component, ``nx_class`` for the ones above it)."""
    group = parent
    parts = path.split("/")
    for depth, part in enumerate(parts):
        if part in group:
            group = group[part]
            continue
        group = h5py.Group(h5py.h5g.create(group.id, part.encode()))
        is_leaf = depth == len(parts) - 1
        set_text_attribute(group, "NX_class", (leaf_class or nx_class) if is_leaf else nx_class)
    return group


def write_array(
    parent: h5py.Group, name: str, array: np.ndarray, units: str | None = None
) -> h5py.Dataset:
    """A contiguous dataset holding ``array`` (and a ``units`` attribute when given)."""
    array = np.ascontiguousarray(array)
    space = h5py.h5s.create_simple(array.shape) if array.shape else _SCALAR_SPACE
    dataset_id = h5py.h5d.create(
        parent.id, name.encode(), h5py.h5t.py_create(array.dtype, logical=True), space
    )
    if array.size:
        dataset_id.write(h5py.h5s.ALL, h5py.h5s.ALL, array)
    dataset = h5py.Dataset(dataset_id)
    if units:
        set_text_attribute(dataset, "units", units)
    return dataset


def write_virtual(
    parent: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    fill_value: object,
    sources: Iterable[tuple[int, int, str, str]],
    units: str | None = None,
) -> h5py.Dataset:
    """A virtual dataset of ``shape`` whose rows ``first .. first + n`` come from
    ``file_name:path`` (each source ``(first, n, file_name, path)`` is ``[n, *shape[1:]]``).

    ``file_name`` is given as HDF5 expects it (``%`` escaped as ``%%``)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(fill_value, dtype=dtype))
    virtual_space = h5py.h5s.create_simple(shape)
    for first, count, file_name, path in sources:
        virtual_space.select_hyperslab((first, *([0] * (len(shape) - 1))), (count, *shape[1:]))
        source_space = h5py.h5s.create_simple((count, *shape[1:]))
        dcpl.set_virtual(virtual_space, file_name.encode(), path.encode(), source_space)
    virtual_space.select_all()
    dataset_id = h5py.h5d.create(
        parent.id,
        name.encode(),
        h5py.h5t.py_create(np.dtype(dtype), logical=True),
        virtual_space,
        dcpl=dcpl,
    )
    dataset = h5py.Dataset(dataset_id)
    if units:
        set_text_attribute(dataset, "units", units)
    return dataset
