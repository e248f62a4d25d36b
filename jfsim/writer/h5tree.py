"""HDF5 objects described in memory first, then created in one pass.

A series creates a few hundred small objects: the master's ~80 datasets and as many
attributes, every data file's per-image arrays, the legacy copies and the virtual datasets.
Each holds HDF5's lock, during which no image chunk can be written, so their cost lies on
the writer's critical path. Described as an ``H5Tree`` (plain data: paths, values,
attributes, links), they are created in one pass under one hold of the lock by one of two
engines with the same result:

* ``native``: HDF5's C functions called directly (``jfsim.writer.hdf5_library``), about
  20 µs for a dataset with a ``units`` attribute;
* ``h5py``: the same calls through h5py's low-level API (about 60 µs), the twin the tests
  compare against and the fallback of ``auto`` when the library cannot be called.

Values are stored as h5py's high-level API stores them (``as_value``): text as
variable-length UTF-8 strings, Python ints as int64, floats as float64, bools as h5py's
enum; objects are created without time stamps, as h5py does.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import h5py
import numpy as np
from h5py._objects import phil

from jfsim.writer import hdf5_library
from jfsim.writer.hdf5_library import (
    H5P_DEFAULT,
    H5S_ALL,
    H5S_SELECT_SET,
    H5S_UNLIMITED,
    hsize_array,
)

__all__ = ["ENGINES", "H5Tree", "VirtualSource", "as_value", "probe"]

ENGINES = ("auto", "native", "h5py")
TEXT = h5py.string_dtype()

#: (first row, rows, file name as HDF5 expects it, dataset path in that file)
VirtualSource = tuple[int, int, str, str]


def as_value(value: Any) -> np.ndarray:
    """``value`` as h5py's high-level API would store it (text: variable-length UTF-8)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, str):
        return np.array(value, dtype=TEXT)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=TEXT)
    return np.asarray(value)


@dataclass(slots=True)
class _Group:
    attrs: dict[str, np.ndarray]
    #: only when missing: an existing group keeps its attributes (else they are replaced)
    if_missing: bool = False


@dataclass(slots=True)
class _Dataset:
    shape: tuple[int, ...]
    dtype: np.dtype
    attrs: dict[str, np.ndarray]
    value: np.ndarray | None = None  # written whole
    chunks: tuple[int, ...] | None = None
    maxshape: tuple[int | None, ...] | None = None  # None: unlimited along that axis
    filters: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (HDF5 filter id, options)
    fill_value: Any = None
    rows: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (first row, block)
    sources: list[VirtualSource] | None = None  # a virtual dataset's


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


class H5Tree:
    """Groups, datasets, attributes and links below one HDF5 group, by relative path.

    Parents are declared before their children (``group`` or ``require_group``); ``write``
    creates everything below the group it is given, opening groups that already exist.
    """

    def __init__(self) -> None:
        self._root_attrs: dict[str, np.ndarray] = {}
        self._groups: dict[str, _Group] = {}
        self._datasets: dict[str, _Dataset] = {}
        self._hard_links: list[tuple[str, str]] = []
        self._external_links: list[tuple[str, str, str]] = []

    def __contains__(self, path: str) -> bool:
        return path in self._groups or path in self._datasets

    def _check_parent(self, path: str) -> None:
        parent, name = _split(path)
        if not name or (parent and parent not in self._groups):
            raise ValueError(f"{path!r}: declare its group {parent!r} first")
        if path in self._datasets:
            raise ValueError(f"{path!r}: declared twice")

    def group(self, path: str, nx_class: str | None = None, **attrs: Any) -> str:
        """Declare a group (``NX_class`` and other attributes replace those it may have)."""
        if path in self._groups:
            self._groups[path].attrs.update(_attrs(nx_class, attrs))
            self._groups[path].if_missing = False
            return path
        self._check_parent(path)
        self._groups[path] = _Group(_attrs(nx_class, attrs))
        return path

    def require_group(self, path: str, nx_class: str, leaf_class: str | None = None) -> str:
        """Declare ``path`` and every group above it that is not declared yet; those that
        are missing in the file get ``NX_class`` (``leaf_class`` for the last one), those
        that exist are left as they are."""
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix not in self._groups:
                is_leaf = depth == len(parts)
                self._check_parent(prefix)
                self._groups[prefix] = _Group(
                    _attrs((leaf_class or nx_class) if is_leaf else nx_class, {}),
                    if_missing=True,
                )
        return path

    def dataset(self, path: str, value: Any, units: str | None = None, **attrs: Any) -> str:
        """A contiguous dataset holding ``value`` (``as_value``), with ``units`` if given."""
        self._check_parent(path)
        array = np.asarray(as_value(value), order="C")
        if array.dtype.kind == "U":
            array = array.astype(TEXT)
        self._datasets[path] = _Dataset(
            array.shape, array.dtype, _attrs(None, {"units": units, **attrs}), value=array
        )
        return path

    def chunked_dataset(
        self,
        path: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        *,
        chunks: tuple[int, ...] | None,
        fill_value: Any,
        units: str | None = None,
        maxshape: tuple[int | None, ...] | None = None,
        filters: tuple[tuple[int, tuple[int, ...]], ...] = (),
        **attrs: Any,
    ) -> str:
        """An empty dataset reading as ``fill_value`` until ``write_rows`` fills parts of it
        (chunked, so rows never written cost no disk), with ``filters`` as
        ``(filter id, options)`` pairs, optional as h5py sets them."""
        self._check_parent(path)
        self._datasets[path] = _Dataset(
            tuple(shape),
            np.dtype(dtype),
            _attrs(None, {"units": units, **attrs}),
            chunks=chunks,
            fill_value=fill_value,
            maxshape=maxshape,
            filters=filters,
        )
        return path

    def write_rows(self, path: str, first_row: int, rows: np.ndarray) -> None:
        """Rows ``first_row ..`` of a ``chunked_dataset``."""
        self._datasets[path].rows.append((first_row, np.asarray(rows, order="C")))

    def virtual_dataset(
        self,
        path: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        fill_value: Any,
        sources: Iterable[VirtualSource],
        units: str | None = None,
    ) -> str:
        """A virtual dataset whose rows ``first .. first + n`` come from ``file:path`` for
        each source ``(first, n, file, path)``; each source is ``[n, *shape[1:]]``."""
        self._check_parent(path)
        self._datasets[path] = _Dataset(
            tuple(shape),
            np.dtype(dtype),
            _attrs(None, {"units": units}),
            fill_value=fill_value,
            sources=list(sources),
        )
        return path

    def attrs(self, path: str, **attrs: Any) -> None:
        """More attributes on a declared group or dataset (``""``: the group written to,
        whose attributes of the same names are replaced)."""
        if not path:
            self._root_attrs.update(_attrs(None, attrs))
            return
        node = self._groups.get(path) or self._datasets[path]
        node.attrs.update(_attrs(None, attrs))

    def hard_link(self, path: str, target: str) -> None:
        """``path`` as a second name of the object at absolute ``target`` (same file)."""
        self._check_parent(path)
        self._hard_links.append((path, target))

    def external_link(self, path: str, file_name: str, target: str) -> None:
        """``path`` → the object at ``target`` in ``file_name`` (relative to this file)."""
        self._check_parent(path)
        self._external_links.append((path, file_name, target))

    def write(self, parent: h5py.Group, *, engine: str = "auto") -> str:
        """Create everything below ``parent``; returns the engine that did it."""
        if engine not in ENGINES:
            raise ValueError(f"h5tree engine {engine!r}: use one of {', '.join(ENGINES)}")
        reason = probe()
        if engine == "native" and reason is not None:
            raise RuntimeError(f"h5tree engine 'native' unavailable: {reason}")
        used = "h5py" if engine == "h5py" or reason is not None else "native"
        with phil:  # HDF5 is not thread-safe: h5py's lock, as h5py's own calls
            if used == "native":
                _NativeWriter(_shared_kit()).write(self, parent.id.id)
            else:
                _H5pyWriter().write(self, parent)
        return used

    def write_private(self, location_id: int, below: str = "") -> None:
        """Create everything below the group ``below`` ("": itself) of the group or file
        ``location_id`` of the private HDF5 instance (``hdf5_library.private_library``),
        under its lock. Virtual datasets cannot be made there."""
        kit = _private_kit()
        for node in self._datasets.values():  # needs h5py's instance: before the lock
            for filter_id, options in node.filters:
                kit.stored_filter(filter_id, options, node.dtype, node.chunks or node.shape)
        lib = kit.lib
        with lib.lock:
            if not below:
                _NativeWriter(kit).write(self, location_id)
                return
            group = lib.check(
                lib.H5Gopen2(location_id, below.encode(), H5P_DEFAULT), "H5Gopen2", below
            )
            try:
                _NativeWriter(kit).write(self, group)
            finally:
                lib.H5Gclose(group)


def _attrs(nx_class: str | None, attrs: dict[str, Any]) -> dict[str, np.ndarray]:
    values = {} if nx_class is None else {"NX_class": as_value(nx_class)}
    values.update({name: as_value(v) for name, v in attrs.items() if v is not None})
    return values


def probe() -> str | None:
    """None when the ``native`` engine can run here, else why not."""
    return hdf5_library.probe()


def _h5_type(dtype: np.dtype) -> Any:
    """h5py's HDF5 type for ``dtype`` (kept alive here: the C calls use its identifier).
    Object arrays hold text (``as_value`` makes no others)."""
    return _cached_type(_type_key(TEXT if dtype.kind == "O" else dtype))


def _type_key(dtype: np.dtype) -> tuple[Any, ...]:
    """What decides a dtype's HDF5 type: numpy's equality of dtypes ignores h5py's
    metadata (text encoding, enum members), so they are part of the key."""
    if dtype.metadata is None:  # most of them: numbers, bytes
        return dtype, None, None
    enum = h5py.check_enum_dtype(dtype)
    members = None if enum is None else tuple(sorted(enum.items()))
    return dtype, h5py.check_string_dtype(dtype), members


@cache
def _cached_type(key: tuple[Any, ...]) -> Any:
    return h5py.h5t.py_create(key[0], logical=True)


@cache
def _creation_lists() -> dict[str, Any]:
    """Property lists as h5py's high-level API uses them: no time stamps on objects, and
    UTF-8 link names when a name is not ASCII."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    utf8_names = h5py.h5p.create(h5py.h5p.LINK_CREATE)
    utf8_names.set_char_encoding(h5py.h5t.CSET_UTF8)
    return {"dcpl": dcpl, "gcpl": gcpl, "utf8_names": utf8_names}


def _name(name: str) -> tuple[bytes, bool]:
    """The encoded link name, and whether it needs a link-creation list that says UTF-8
    (else the default, ASCII)."""
    try:
        return name.encode("ascii"), False
    except UnicodeEncodeError:
        return name.encode("utf-8"), True


def _h5py_name(name: str) -> tuple[bytes, Any]:
    """``_name`` with h5py's link-creation list (None: the default)."""
    encoded, utf8 = _name(name)
    return encoded, _creation_lists()["utf8_names"] if utf8 else None


def _fill_value(value: Any, dtype: np.dtype) -> np.ndarray:
    """A fill value as HDF5 takes it; text is given as variable-length text, as h5py's
    high-level API does (h5py's low-level call stores garbage for fixed-length text)."""
    text = h5py.check_string_dtype(dtype)
    if text is not None:
        return np.array(value, dtype=h5py.string_dtype(text.encoding))
    return np.array(value, dtype=dtype)


def _special_dcpl(node: _Dataset) -> Any:
    """The creation list of a chunked or virtual dataset (None for a plain one)."""
    if node.chunks is None and node.sources is None and node.fill_value is None:
        return None
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if node.chunks is not None:
        dcpl.set_chunk(node.chunks)
    for filter_id, options in node.filters:
        dcpl.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL, options)
    if node.fill_value is not None:
        dcpl.set_fill_value(_fill_value(node.fill_value, node.dtype))
    if node.sources is not None:
        virtual_space = h5py.h5s.create_simple(node.shape)
        tail = node.shape[1:]
        for first, count, file_name, path in node.sources:
            virtual_space.select_hyperslab((first, *([0] * len(tail))), (count, *tail))
            source_space = h5py.h5s.create_simple((count, *tail))
            dcpl.set_virtual(virtual_space, file_name.encode(), path.encode(), source_space)
    return dcpl


class _SharedKit:
    """What the native writer needs in h5py's own instance: h5py's types and property
    lists, so that both engines store alike."""

    def __init__(self) -> None:
        self.lib = hdf5_library.library()
        self._scalar = h5py.h5s.create(h5py.h5s.SCALAR)
        lists = _creation_lists()
        self.dcpl, self.gcpl = lists["dcpl"].id, lists["gcpl"].id
        self.utf8_lcpl = lists["utf8_names"].id

    @property
    def scalar_space(self) -> int:
        return self._scalar.id

    def type_id(self, dtype: np.dtype) -> int:
        return int(_h5_type(dtype).id)

    def special_dcpl(self, node: _Dataset) -> tuple[int, Any] | None:
        """(identifier, what keeps it open) of a chunked or virtual dataset's list."""
        dcpl = _special_dcpl(node)
        return None if dcpl is None else (dcpl.id, dcpl)

    def release(self, _keep: Any) -> None:
        """h5py closes its lists when they are collected."""


@cache
def _shared_kit() -> _SharedKit:
    return _SharedKit()


class _PrivateKit:
    """The same in the private instance, where h5py's objects mean nothing: types and
    property lists made by its own C functions, as h5py makes them in its instance."""

    def __init__(self) -> None:
        self.lib = lib = hdf5_library.private_library()
        with lib.lock:
            self.scalar_space = lib.check(lib.H5Screate(0), "H5Screate", "scalar")  # H5S_SCALAR
            self.dcpl = self._list("H5P_CLS_DATASET_CREATE_ID_g")
            lib.check(lib.H5Pset_obj_track_times(self.dcpl, False), "H5Pset_obj_track_times", "")
            self.gcpl = self._list("H5P_CLS_GROUP_CREATE_ID_g")
            lib.check(lib.H5Pset_obj_track_times(self.gcpl, False), "H5Pset_obj_track_times", "")
            self.utf8_lcpl = self._list("H5P_CLS_LINK_CREATE_ID_g")
            lib.check(
                lib.H5Pset_char_encoding(self.utf8_lcpl, hdf5_library.H5T_CSET_UTF8),
                "H5Pset_char_encoding",
                "",
            )
        self._types: dict[tuple[Any, ...], int] = {}
        self._filters: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def stored_filter(
        self, filter_id: int, options: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The options h5py's instance stores for this filter on such chunks: a filter
        completes them as a dataset is made (bitshuffle adds the element and block sizes),
        which the private instance, where the filter has only its name, cannot do. Found
        once, with a dataset in memory."""
        key = (filter_id, tuple(options), np.dtype(dtype), tuple(chunks))
        stored = self._filters.get(key)
        if stored is None:
            stored = self._filters[key] = _filter_as_stored(*key)
        return stored

    def _list(self, class_global: str) -> int:
        return self.lib.check(
            self.lib.H5Pcreate(self.lib.global_id(class_global)), "H5Pcreate", class_global
        )

    def type_id(self, dtype: np.dtype) -> int:
        """The HDF5 type h5py's ``py_create`` would make for ``dtype`` (numbers, bools as
        h5py's enum, text), made once and kept."""
        if dtype.kind == "O":
            dtype = TEXT  # as h5py's instance: object arrays hold text
        key = _type_key(dtype)
        found = self._types.get(key)
        if found is None:
            found = self._types[key] = self._make_type(dtype)
        return found

    def _make_type(self, dtype: np.dtype) -> int:
        lib = self.lib
        if dtype.kind == "O" or dtype.kind == "S":
            text = h5py.check_string_dtype(dtype)
            if text is None:
                raise TypeError(f"no HDF5 type for {dtype} in the private instance")
            made = lib.check(lib.H5Tcopy(lib.global_id("H5T_C_S1_g")), "H5Tcopy", str(dtype))
            utf8 = text.encoding == "utf-8"
            size = hdf5_library.H5T_VARIABLE if text.length is None else text.length
            lib.check(lib.H5Tset_size(made, size), "H5Tset_size", str(dtype))
            lib.check(lib.H5Tset_cset(made, int(utf8)), "H5Tset_cset", str(dtype))
            if text.length is not None:
                status = lib.H5Tset_strpad(made, hdf5_library.H5T_STR_NULLPAD)
                lib.check(status, "H5Tset_strpad", str(dtype))
            return made
        if dtype.kind == "b":
            made = lib.check(
                lib.H5Tenum_create(lib.global_id("H5T_NATIVE_SCHAR_g")), "H5Tenum_create", "bool"
            )
            for name, value in ((b"FALSE", 0), (b"TRUE", 1)):
                number = ctypes.c_int8(value)
                lib.check(
                    lib.H5Tenum_insert(made, name, ctypes.byref(number)), "H5Tenum_insert", "bool"
                )
            return made
        enum = h5py.check_enum_dtype(dtype)
        if enum is not None:  # h5py's enums: named values of an integer type
            base = np.dtype(dtype.str)
            made = lib.check(lib.H5Tenum_create(self.type_id(base)), "H5Tenum_create", str(dtype))
            for name, value in enum.items():
                member = np.array(value, dtype=base)
                status = lib.H5Tenum_insert(made, name.encode(), member.ctypes.data)
                lib.check(status, "H5Tenum_insert", name)
            return made
        big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
        order = "BE" if big else "LE"
        bits = 8 * dtype.itemsize
        names = {"i": f"H5T_STD_I{bits}", "u": f"H5T_STD_U{bits}", "f": f"H5T_IEEE_F{bits}"}
        if dtype.kind not in names or (dtype.kind == "f" and bits not in (32, 64)):
            raise TypeError(f"no HDF5 type for {dtype} in the private instance")
        return lib.check(
            lib.H5Tcopy(lib.global_id(f"{names[dtype.kind]}{order}_g")), "H5Tcopy", str(dtype)
        )

    def special_dcpl(self, node: _Dataset) -> tuple[int, Any] | None:
        if node.chunks is None and node.sources is None and node.fill_value is None:
            return None
        if node.sources is not None:
            raise ValueError("virtual datasets are not made in the private HDF5 instance")
        lib = self.lib
        dcpl = self._list("H5P_CLS_DATASET_CREATE_ID_g")
        try:
            lib.check(lib.H5Pset_obj_track_times(dcpl, False), "H5Pset_obj_track_times", "")
            if node.chunks is not None:
                chunks = hsize_array(node.chunks)
                lib.check(lib.H5Pset_chunk(dcpl, len(node.chunks), chunks), "H5Pset_chunk", "")
            for filter_id, options in node.filters:
                # found by write_private before it took the lock
                stored = self.stored_filter(
                    filter_id, options, node.dtype, node.chunks or node.shape
                )
                values = (ctypes.c_uint * len(stored))(*stored)
                status = lib.H5Pset_filter(
                    dcpl, filter_id, hdf5_library.H5Z_FLAG_OPTIONAL, len(stored), values
                )
                lib.check(status, "H5Pset_filter", str(filter_id))
            if node.fill_value is not None:
                fill = _fill_value(node.fill_value, node.dtype)
                pointer, _keep = _buffer(fill)
                status = lib.H5Pset_fill_value(dcpl, self.type_id(node.dtype), pointer)
                lib.check(status, "H5Pset_fill_value", "")
        except BaseException:
            lib.H5Pclose(dcpl)
            raise
        return dcpl, dcpl

    def release(self, dcpl: Any) -> None:
        self.lib.H5Pclose(dcpl)


_KIT_MAKING = threading.Lock()


def _private_kit() -> _PrivateKit:
    with _KIT_MAKING:  # one kit, however many threads ask for it first
        return _private_kit_once()


@cache
def _private_kit_once() -> _PrivateKit:
    return _PrivateKit()


def _filter_as_stored(
    filter_id: int, options: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...]
) -> tuple[int, ...]:
    """``_PrivateKit.stored_filter`` (and the filter's name given to the private instance)."""
    in_memory = f"jfsim-filter-{os.getpid()}-{secrets.token_hex(8)}.h5"  # files go by name
    with h5py.File(in_memory, "w", driver="core", backing_store=False) as h5:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(chunks)
        dcpl.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL, options)
        space = h5py.h5s.create_simple(chunks)
        dataset = h5py.h5d.create(h5.id, b"probe", _h5_type(dtype), space, dcpl=dcpl)
        _id, _flags, stored, name = dataset.get_create_plist().get_filter(0)
    hdf5_library.register_private_filter(filter_id, name.decode(errors="replace"))
    return tuple(int(value) for value in stored)


class _NativeWriter:
    """The tree through HDF5's C functions of one instance (its ``kit``); every
    identifier opened here is closed here."""

    def __init__(self, kit: _SharedKit | _PrivateKit) -> None:
        self.kit = kit
        self.lib = kit.lib

    def _lcpl(self, name: str) -> tuple[bytes, int]:
        encoded, utf8 = _name(name)
        return encoded, self.kit.utf8_lcpl if utf8 else H5P_DEFAULT

    def write(self, tree: H5Tree, parent_id: int) -> None:
        lib = self.lib
        handles: dict[str, int] = {"": parent_id}
        existing = {""}  # groups that were in the file before this pass
        try:
            self._attributes(handles[""], tree._root_attrs, "/", replace=True)
            for path, group in tree._groups.items():
                above, name = _split(path)
                encoded, lcpl = self._lcpl(name)
                location = handles[above]
                if above in existing and lib.H5Lexists(location, encoded, H5P_DEFAULT) > 0:
                    handles[path] = lib.check(
                        lib.H5Gopen2(location, encoded, H5P_DEFAULT), "H5Gopen2", path
                    )
                    existing.add(path)
                    if not group.if_missing:
                        self._attributes(handles[path], group.attrs, path, replace=True)
                    continue
                handles[path] = lib.check(
                    lib.H5Gcreate2(location, encoded, lcpl, self.kit.gcpl, H5P_DEFAULT),
                    "H5Gcreate2",
                    path,
                )
                self._attributes(handles[path], group.attrs, path, replace=False)
            for path, node in tree._datasets.items():
                above, name = _split(path)
                self._dataset(handles[above], name, node, path)
            for path, target in tree._hard_links:
                above, name = _split(path)
                encoded, lcpl = self._lcpl(name)
                lib.check(
                    lib.H5Lcreate_hard(
                        handles[""], target.encode(), handles[above], encoded, lcpl, H5P_DEFAULT
                    ),
                    "H5Lcreate_hard",
                    path,
                )
            for path, file_name, target in tree._external_links:
                above, name = _split(path)
                encoded, lcpl = self._lcpl(name)
                lib.check(
                    lib.H5Lcreate_external(
                        file_name.encode(),
                        target.encode(),
                        handles[above],
                        encoded,
                        lcpl,
                        H5P_DEFAULT,
                    ),
                    "H5Lcreate_external",
                    path,
                )
        finally:
            for path, handle in handles.items():
                if path:
                    lib.H5Gclose(handle)

    def _space(
        self, shape: tuple[int, ...], maxshape: tuple[int | None, ...] | None = None
    ) -> tuple[int, bool]:
        """A dataspace for ``shape``: (identifier, whether it must be closed)."""
        if not shape:
            return self.kit.scalar_space, False
        limits = None
        if maxshape is not None:
            limits = hsize_array([H5S_UNLIMITED if m is None else m for m in maxshape])
        space = self.lib.H5Screate_simple(len(shape), hsize_array(shape), limits)
        return self.lib.check(space, "H5Screate_simple", str(shape)), True

    def _dataset(self, location: int, name: str, node: _Dataset, path: str) -> None:
        lib = self.lib
        h5_type = self.kit.type_id(node.dtype)
        special = self.kit.special_dcpl(node)
        space, owned = self._space(node.shape, node.maxshape)
        encoded, lcpl = self._lcpl(name)
        try:
            dataset = lib.check(
                lib.H5Dcreate2(
                    location,
                    encoded,
                    h5_type,
                    space,
                    lcpl,
                    self.kit.dcpl if special is None else special[0],
                    H5P_DEFAULT,
                ),
                "H5Dcreate2",
                path,
            )
            try:
                if node.value is not None and node.value.size:
                    pointer, _keep = _buffer(node.value)
                    status = lib.H5Dwrite(dataset, h5_type, H5S_ALL, H5S_ALL, 0, pointer)
                    lib.check(status, "H5Dwrite", path)
                for first_row, rows in node.rows:
                    self._write_rows(dataset, h5_type, space, first_row, rows, path)
                self._attributes(dataset, node.attrs, path, replace=False)
            finally:
                lib.H5Dclose(dataset)
        finally:
            if owned:
                lib.H5Sclose(space)
            if special is not None:
                self.kit.release(special[1])

    def _write_rows(
        self, dataset: int, h5_type: int, space: int, first_row: int, rows: np.ndarray, path: str
    ) -> None:
        lib = self.lib
        if not rows.size:
            return
        start = hsize_array([first_row] + [0] * (rows.ndim - 1))
        count = hsize_array(list(rows.shape))
        lib.check(
            lib.H5Sselect_hyperslab(space, H5S_SELECT_SET, start, None, count, None),
            "H5Sselect_hyperslab",
            path,
        )
        memory, owned = self._space(rows.shape)
        try:
            pointer, _keep = _buffer(rows)
            lib.check(lib.H5Dwrite(dataset, h5_type, memory, space, 0, pointer), "H5Dwrite", path)
        finally:
            if owned:
                lib.H5Sclose(memory)

    def _attributes(
        self, target: int, attrs: dict[str, np.ndarray], path: str, *, replace: bool
    ) -> None:
        lib = self.lib
        for name, value in attrs.items():
            encoded = name.encode()
            if replace and lib.H5Aexists(target, encoded) > 0:
                lib.check(lib.H5Adelete(target, encoded), "H5Adelete", f"{path}@{name}")
            h5_type = self.kit.type_id(value.dtype)
            space, owned = self._space(value.shape)
            try:
                attribute = lib.check(
                    lib.H5Acreate2(target, encoded, h5_type, space, H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2",
                    f"{path}@{name}",
                )
                try:
                    pointer, _keep = _buffer(value)
                    status = lib.H5Awrite(attribute, h5_type, pointer)
                    lib.check(status, "H5Awrite", f"{path}@{name}")
                finally:
                    lib.H5Aclose(attribute)
            finally:
                if owned:
                    lib.H5Sclose(space)


def _buffer(array: np.ndarray) -> tuple[Any, Any]:
    """A pointer to ``array``'s values as HDF5 reads them (text: an array of ``char *``),
    and the object that keeps them alive for the call."""
    if array.dtype.kind == "O":
        texts = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel()]
        pointers = (ctypes.c_char_p * len(texts))(*texts)
        return pointers, (pointers, texts)
    contiguous = np.asarray(array, order="C")
    return contiguous.ctypes.data, contiguous


class _H5pyWriter:
    """The same tree through h5py's low-level API (the twin of ``_NativeWriter``)."""

    def write(self, tree: H5Tree, parent: h5py.Group) -> None:
        lists = _creation_lists()
        groups: dict[str, Any] = {"": parent.id}
        existing = {""}
        self._attributes(parent.id, tree._root_attrs, replace=True)
        for path, group in tree._groups.items():
            above, name = _split(path)
            encoded, lcpl = _h5py_name(name)
            location = groups[above]
            if above in existing and location.links.exists(encoded):
                groups[path] = h5py.h5g.open(location, encoded)
                existing.add(path)
                if not group.if_missing:
                    self._attributes(groups[path], group.attrs, replace=True)
                continue
            groups[path] = h5py.h5g.create(location, encoded, lcpl=lcpl, gcpl=lists["gcpl"])
            self._attributes(groups[path], group.attrs, replace=False)
        for path, node in tree._datasets.items():
            above, name = _split(path)
            encoded, lcpl = _h5py_name(name)
            space = _h5py_space(node.shape, node.maxshape)
            dcpl = _special_dcpl(node) or lists["dcpl"]
            dataset = h5py.h5d.create(
                groups[above], encoded, _h5_type(node.dtype), space, lcpl=lcpl, dcpl=dcpl
            )
            if node.value is not None and node.value.size:
                dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, node.value)
            for first_row, rows in node.rows:
                if rows.size:
                    file_space = dataset.get_space()
                    file_space.select_hyperslab((first_row, *([0] * (rows.ndim - 1))), rows.shape)
                    dataset.write(h5py.h5s.create_simple(rows.shape), file_space, rows)
            self._attributes(dataset, node.attrs, replace=False)
        for path, target in tree._hard_links:
            above, name = _split(path)
            encoded, lcpl = _h5py_name(name)
            groups[above].links.create_hard(encoded, parent.file.id, target.encode(), lcpl=lcpl)
        for path, file_name, target in tree._external_links:
            above, name = _split(path)
            encoded, lcpl = _h5py_name(name)
            groups[above].links.create_external(
                encoded, file_name.encode(), target.encode(), lcpl=lcpl
            )

    @staticmethod
    def _attributes(target: Any, attrs: dict[str, np.ndarray], *, replace: bool) -> None:
        for name, value in attrs.items():
            encoded = name.encode()
            if replace and h5py.h5a.exists(target, encoded):
                h5py.h5a.delete(target, encoded)
            space = _h5py_space(value.shape)
            attribute = h5py.h5a.create(target, encoded, _h5_type(value.dtype), space)
            attribute.write(np.asarray(value, order="C"))


def _h5py_space(shape: tuple[int, ...], maxshape: tuple[int | None, ...] | None = None) -> Any:
    if not shape:
        return h5py.h5s.create(h5py.h5s.SCALAR)
    if maxshape is None:
        return h5py.h5s.create_simple(shape)
    limits = tuple(h5py.h5s.UNLIMITED if m is None else m for m in maxshape)
    return h5py.h5s.create_simple(shape, limits)
