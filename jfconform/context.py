"""Read-only, crash-proof access to one checked file and the data files it reaches.

Rules never touch h5py directly for lookups: every helper here returns ``None`` when an
object is absent *or* unreadable, so a broken link or a truncated data file becomes a
finding of the rule that cares, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle/LZ4 filters with libhdf5
import numpy as np

from jfconform.registry import DATA, MASTER

#: Names Jungfraujoch gives its files (Jungfraujoch HDF5.md §2).
MASTER_NAME = re.compile(r"^(?P<prefix>.+)_master\.h5$")
DATA_NAME = re.compile(r"^(?P<prefix>.+)_data_(?P<number>\d{6})\.h5$")
#: Reprocessing output (Jungfraujoch HDF5.md §2): integrated layout, images by VDS from the
#: raw run's files.
PROCESS_NAME = re.compile(r"^(?P<prefix>.+)_process\.h5$")
LEGACY_LINK = re.compile(r"^data_(\d{6})$")

_READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


@dataclass(frozen=True, slots=True)
class ImageStore:
    """A real (non-virtual) dataset holding frames, wherever it lives.

    Attributes:
        label: how findings name it, ``file.h5:/entry/data/data``.
        file_name: the data file's name as the master spells it (link/VDS target).
        dataset: the open dataset (read-only).
        first_frame: index of its first frame in the whole run (legacy: consecutive blocks).
    """

    label: str
    file_name: str
    dataset: h5py.Dataset
    first_frame: int


@dataclass(frozen=True, slots=True)
class Reference:
    """One external link or VDS mapping from the checked file to another file."""

    kind: str  # "external-link" | "vds"
    path: str  # HDF5 path in the checked file
    file_name: str  # as stored
    object_path: str  # dataset path inside the target file
    resolved: Path | None  # absolute path when relative resolution is possible


def decode_text(value: Any) -> str | None:
    """A str for HDF5 string values (bytes, numpy str/bytes, 0-d or 1-element arrays)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str | np.str_):
        return str(value)
    return None


def is_string_dataset(dataset: h5py.Dataset) -> bool:
    return h5py.check_string_dtype(dataset.dtype) is not None or dataset.dtype.kind in "SU"


class FileContext:
    """One file under check, opened read-only, plus the files it links to.

    Args:
        path: the file (a master, an integrated file, or a data file).
        sample: how many frames pixel-level rules may decode per image store.
    """

    def __init__(self, path: Path, h5: h5py.File, *, sample: int = 2) -> None:
        self.path = path
        self.h5 = h5
        self.sample = sample
        self.name = path.name
        self._opened: dict[Path, h5py.File | None] = {}
        #: Per-file memo for values several rules derive (chains, axis lists).
        self.cache: dict[str, Any] = {}
        self._objects: dict[tuple[Any, str], Any] = {}
        self._attrs: dict[tuple[Any, str], Any] = {}
        self.open_errors: dict[Path, str] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        for handle in self._opened.values():
            if handle is not None:
                handle.close()
        self._opened.clear()

    def open_related(self, path: Path) -> h5py.File | None:
        """Open a linked data file read-only, once; ``None`` (and a recorded reason) on failure."""
        key = path.resolve()
        if key not in self._opened:
            try:
                self._opened[key] = h5py.File(key, "r")
            except OSError as error:
                self._opened[key] = None
                self.open_errors[key] = str(error).splitlines()[0]
        return self._opened[key]

    # -- lookups ---------------------------------------------------------------------------
    def get(self, path: str, base: h5py.Group | None = None) -> h5py.Group | h5py.Dataset | None:
        """The object at ``path`` (absolute, or relative to ``base``), ``None`` if unreachable.

        Lookups are memoised: the files are read-only for the whole check.
        """
        root = self.h5 if base is None else base
        key = (root.id, path)
        if key not in self._objects:
            try:
                self._objects[key] = root.get(path)
            except _READ_ERRORS:
                self._objects[key] = None
        return self._objects[key]

    def dataset(self, path: str, base: h5py.Group | None = None) -> h5py.Dataset | None:
        obj = self.get(path, base)
        return obj if isinstance(obj, h5py.Dataset) else None

    def group(self, path: str, base: h5py.Group | None = None) -> h5py.Group | None:
        obj = self.get(path, base)
        return obj if isinstance(obj, h5py.Group) else None

    def link(self, group: h5py.Group, name: str) -> Any:
        try:
            return group.get(name, getlink=True)
        except _READ_ERRORS:
            return None

    def attr(self, obj: h5py.HLObject, name: str) -> Any:
        """An attribute value, ``None`` if absent or unreadable (memoised)."""
        key = (obj.id, name)
        if key not in self._attrs:
            try:
                self._attrs[key] = obj.attrs[name] if name in obj.attrs else None
            except _READ_ERRORS:
                self._attrs[key] = None
        return self._attrs[key]

    def attr_text(self, obj: h5py.HLObject, name: str) -> str | None:
        return decode_text(self.attr(obj, name))

    @staticmethod
    def value(dataset: h5py.Dataset) -> Any:
        """The whole dataset (metadata-sized reads only), ``None`` if it cannot be read."""
        try:
            return dataset[()]
        except _READ_ERRORS:
            return None

    def array(self, dataset: h5py.Dataset | None) -> np.ndarray | None:
        """The dataset as a numpy array, ``None`` if absent or unreadable."""
        value = None if dataset is None else self.value(dataset)
        return None if value is None else np.asarray(value)

    def text(self, dataset: h5py.Dataset | None) -> str | None:
        return None if dataset is None else decode_text(self.value(dataset))

    def number(self, dataset: h5py.Dataset | None) -> float | None:
        """A scalar number (0-d or 1-element), ``None`` if absent, non-numeric or not scalar."""
        if dataset is None or dataset.dtype.kind not in "biuf" or dataset.size != 1:
            return None
        raw = self.value(dataset)
        return None if raw is None else float(np.asarray(raw).reshape(-1)[0])

    def nx_class(self, obj: h5py.HLObject) -> str | None:
        return self.attr_text(obj, "NX_class")

    def children_of_class(self, group: h5py.Group, nx_class: str) -> list[h5py.Group]:
        """Member groups (followed through hard and soft links) with this ``NX_class``."""
        found = []
        for name in self.member_names(group):
            link = self.link(group, name)
            if isinstance(link, h5py.ExternalLink):
                continue
            child = self.get(name, group)
            if isinstance(child, h5py.Group) and self.nx_class(child) == nx_class:
                found.append(child)
        return found

    @staticmethod
    def member_names(group: h5py.Group) -> list[str]:
        try:
            return list(group.keys())
        except _READ_ERRORS:
            return []

    def walk(self) -> Iterator[tuple[str, h5py.Group | h5py.Dataset]]:
        """Every object reachable through hard links, as (path, object), root excluded."""
        return iter(self._walked)

    @cached_property
    def _walked(self) -> list[tuple[str, h5py.Group | h5py.Dataset]]:
        found: list[tuple[str, h5py.Group | h5py.Dataset]] = []

        def visit(name: str, obj: h5py.Group | h5py.Dataset) -> None:
            found.append(("/" + name, obj))

        try:
            self.h5.visititems(visit)
        except _READ_ERRORS:
            pass
        return found

    # -- the NXmx skeleton -------------------------------------------------------------------
    @cached_property
    def entries(self) -> list[h5py.Group]:
        return self.children_of_class(self.h5, "NXentry")

    @cached_property
    def entry(self) -> h5py.Group | None:
        """The NXmx entry (the first NXentry if none declares NXmx), else ``/entry``."""
        for candidate in self.entries:
            if self.text(self.dataset("definition", candidate)) == "NXmx":
                return candidate
        if self.entries:
            return self.entries[0]
        return self.group("/entry")

    def in_entry(self, nx_class: str) -> list[h5py.Group]:
        return [] if self.entry is None else self.children_of_class(self.entry, nx_class)

    @cached_property
    def instruments(self) -> list[h5py.Group]:
        return self.in_entry("NXinstrument")

    @cached_property
    def detectors(self) -> list[h5py.Group]:
        found = []
        for instrument in self.instruments:
            found.extend(self.children_of_class(instrument, "NXdetector"))
        return found

    @cached_property
    def modules(self) -> list[h5py.Group]:
        found = []
        for detector in self.detectors:
            found.extend(self.children_of_class(detector, "NXdetector_module"))
        return found

    @cached_property
    def data_group(self) -> h5py.Group | None:
        """``/entry/data`` by name (layout rules key on the path, as readers do)."""
        return self.group("data", self.entry) if self.entry is not None else None

    # -- role and layout -------------------------------------------------------------------
    @cached_property
    def role(self) -> str:
        """``master`` for NXmx masters and integrated files, ``data`` for data files."""
        if self.entries and self.dataset("definition", self.entries[0]) is not None:
            return MASTER
        if DATA_NAME.match(self.name):
            return DATA
        return MASTER

    @cached_property
    def legacy_links(self) -> list[str]:
        group = self.data_group
        if group is None:
            return []
        return sorted(n for n in self.member_names(group) if LEGACY_LINK.match(n))

    @cached_property
    def image_dataset(self) -> h5py.Dataset | None:
        """``/entry/data/data`` of the checked file (real or virtual)."""
        return None if self.data_group is None else self.dataset("data", self.data_group)

    @cached_property
    def layout(self) -> str | None:
        """``legacy``, ``vds``, ``integrated`` or ``None`` (nothing or an ambiguous mix)."""
        has_data = self.image_dataset is not None
        if self.legacy_links and not has_data:
            return "legacy"
        if has_data and not self.legacy_links:
            return "vds" if self.image_dataset.is_virtual else "integrated"
        return None

    @cached_property
    def _references(self) -> list[Reference]:
        refs: list[Reference] = []
        for path, obj in self.walk():
            if isinstance(obj, h5py.Group):
                for name in self.member_names(obj):
                    link = self.link(obj, name)
                    if isinstance(link, h5py.ExternalLink):
                        refs.append(
                            Reference(
                                "external-link",
                                f"{path}/{name}",
                                link.filename,
                                link.path,
                                self.resolve_name(link.filename),
                            )
                        )
            elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
                try:
                    sources = obj.virtual_sources()
                except _READ_ERRORS:
                    continue
                for source in sources:
                    refs.append(
                        Reference(
                            "vds",
                            path,
                            source.file_name,
                            source.dset_name,
                            self.resolve_name(source.file_name),
                        )
                    )
        # The root's own links are not visited by visititems.
        for name in self.member_names(self.h5):
            link = self.link(self.h5, name)
            if isinstance(link, h5py.ExternalLink):
                refs.append(
                    Reference(
                        "external-link",
                        f"/{name}",
                        link.filename,
                        link.path,
                        self.resolve_name(link.filename),
                    )
                )
        return refs

    def references(self) -> list[Reference]:
        """Every external link and VDS mapping in the checked file (hard-link walk)."""
        return list(self._references)

    def resolve_name(self, file_name: str) -> Path | None:
        """Where libhdf5 finds a link/VDS target: the checked file itself for ``.``, else
        relative names against this file's directory (conformance.md §6.4, §6.5)."""
        if file_name == ".":
            return self.path
        candidate = Path(file_name)
        if candidate.is_absolute():
            return candidate
        return self.path.parent / candidate

    @cached_property
    def image_stores(self) -> list[ImageStore]:
        """The real datasets that hold this run's frames (through links or VDS mappings)."""
        stores: list[ImageStore] = []
        if self.role == DATA:
            dataset = self.dataset("/entry/data/data")
            if dataset is not None and not dataset.is_virtual:
                stores.append(ImageStore(f"{self.name}:/entry/data/data", self.name, dataset, 0))
            return stores
        if self.layout == "integrated":
            stores.append(
                ImageStore(
                    f"{self.name}:{self.image_dataset.name}", self.name, self.image_dataset, 0
                )
            )
        elif self.layout == "legacy":
            first = 0
            for name in self.legacy_links:
                link = self.link(self.data_group, name)
                target = self._external_dataset(link)
                if target is None:
                    continue
                stores.append(
                    ImageStore(f"{link.filename}:{link.path}", link.filename, target, first)
                )
                first += target.shape[0] if target.ndim else 0
        elif self.layout == "vds":
            for source in self.vds_sources(self.image_dataset):
                if source.dataset is not None:
                    stores.append(
                        ImageStore(
                            f"{source.file_name}:{source.dset_name}",
                            source.file_name,
                            source.dataset,
                            source.first_frame,
                        )
                    )
        return stores

    def _external_dataset(self, link: Any) -> h5py.Dataset | None:
        if not isinstance(link, h5py.ExternalLink):
            return None
        target_path = self.resolve_name(link.filename)
        if target_path is None or not target_path.is_file():
            return None
        handle = self.open_related(target_path)
        if handle is None:
            return None
        return self.dataset(link.path, handle)

    def vds_sources(self, dataset: h5py.Dataset) -> list[VdsSource]:
        try:
            maps = dataset.virtual_sources()
        except _READ_ERRORS:
            return []
        sources = []
        for mapping in maps:
            resolved = self.resolve_name(mapping.file_name)
            target = None
            if resolved is not None and resolved.is_file():
                handle = self.h5 if resolved == self.path else self.open_related(resolved)
                if handle is not None:
                    target = self.dataset(mapping.dset_name, handle)
            frames = _selected_frames(mapping.vspace)
            source_points = _npoints(mapping.src_space)
            if _is_select_all(mapping.src_space):
                source_points = int(target.size) if target is not None else -1
            sources.append(
                VdsSource(
                    mapping.file_name,
                    mapping.dset_name,
                    resolved,
                    target,
                    frames,
                    int(frames[0]) if frames.size else 0,
                    _npoints(mapping.vspace),
                    source_points,
                )
            )
        return sources

    # -- run shape ------------------------------------------------------------------------
    @cached_property
    def frame_shape(self) -> tuple[int, ...] | None:
        """(ny, nx) of the images, from ``/entry/data/data`` or the first legacy target."""
        if self.image_dataset is not None and self.image_dataset.ndim >= 3:
            return tuple(int(n) for n in self.image_dataset.shape[1:])
        for store in self.image_stores:
            if store.dataset.ndim >= 3:
                return tuple(int(n) for n in store.dataset.shape[1:])
        return None

    @cached_property
    def n_frames(self) -> int | None:
        """Frames in the run: ``/entry/data/data`` length, or the legacy targets summed."""
        if self.image_dataset is not None and self.image_dataset.ndim >= 1:
            return int(self.image_dataset.shape[0])
        if self.layout == "legacy" and self.image_stores:
            if len(self.image_stores) != len(self.legacy_links):
                return None
            return sum(int(s.dataset.shape[0]) for s in self.image_stores if s.dataset.ndim)
        return None


@dataclass(frozen=True, slots=True)
class VdsSource:
    file_name: str
    dset_name: str
    resolved: Path | None
    dataset: h5py.Dataset | None
    frames: np.ndarray  # virtual frame indices this mapping covers (first axis)
    first_frame: int
    virtual_points: int
    source_points: int


def _npoints(space: h5py.h5s.SpaceID) -> int:
    try:
        return int(space.get_select_npoints())
    except _READ_ERRORS:
        return -1


def _is_select_all(space: h5py.h5s.SpaceID) -> bool:
    try:
        return space.get_select_type() == h5py.h5s.SEL_ALL
    except _READ_ERRORS:
        return False


def _selected_frames(space: h5py.h5s.SpaceID) -> np.ndarray:
    """Indices along the first axis touched by a (regular) hyperslab selection."""
    try:
        if space.get_select_type() == h5py.h5s.SEL_ALL:
            return np.arange(space.shape[0])
        start, stride, count, block = space.get_regular_hyperslab()
    except _READ_ERRORS:
        try:
            low, high = space.get_select_bounds()
            return np.arange(low[0], high[0] + 1)
        except _READ_ERRORS:
            return np.empty(0, dtype=np.int64)
    base = start[0] + stride[0] * np.arange(count[0])
    return (base[:, None] + np.arange(block[0])[None, :]).reshape(-1)
