"""Read-only, crash-proof, bounded access to one checked file and the data files it reaches.

Rules never touch h5py directly for lookups. Every helper returns ``None`` when an object is
absent, unreadable or too large to read, and the context keeps the three apart: ``exists``
tells absent from present, objects that exist but cannot be read are recorded with their
HDF5 error (reported once, as H5-013, never as "missing"), and datasets larger than the
read limit are not read at all but recorded (reported as H5-014). So a broken link, a
truncated data file or a dataset declared with 10⁹ elements becomes a finding, never a
traceback or gigabytes of memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle/LZ4 filters with libhdf5
import numpy as np

from jfconform.registry import DATA, MASTER
from jfconform.storage import (
    DATA_NAME,
    LEGACY_LINK,
    READ_ERRORS,
    ImageStore,
    Reference,
    VdsSource,
    declared_nbytes,
    mapped_frames,
)
from jfconform.units import Unit, parse_unit

#: The most bytes one whole-dataset read may take (``--max-read-mb``); per-image arrays of
#: runs up to ~60 000 images with 250 spots fit. Larger datasets are skipped and reported.
DEFAULT_READ_LIMIT_BYTES = 64 * 2**20
#: The most bytes one attribute read may take (attributes hold metadata, never arrays of
#: frames); a larger declared attribute is reported as unreadable.
ATTRIBUTE_LIMIT_BYTES = 2**20
#: What a memoised look-up finds.
Found = TypeVar("Found")


@dataclass(slots=True)
class ReadProblem:
    """An object that exists but was not read: unreadable (HDF5 error) or too large."""

    path: str
    file_name: str | None  # a linked file's name as the master spells it; None: checked file
    detail: str  # the HDF5 error, or the declared size
    rules: set[str] = field(default_factory=set)  # the rules that wanted it


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


def _identity(obj: h5py.HLObject) -> h5py.h5o.ObjectID | None:
    """The object's HDF5 identity (file and address) for memoising, or None when h5py
    cannot tell it: its object header is damaged, and reading it fails."""
    identity = obj.id
    try:
        hash(identity)
    except READ_ERRORS:  # h5py: "Objects of class FileID cannot be hashed"
        return None
    return identity


def _memoised(
    table: dict[Any, Found], obj: h5py.HLObject, name: str, find: Callable[[], Found]
) -> Found:
    """``find()`` once per object and name; afresh each time for an object h5py cannot
    identify (a damaged object header)."""
    identity = _identity(obj)
    if identity is None:
        return find()
    if (identity, name) not in table:
        table[identity, name] = find()
    return table[identity, name]


def leaf(path: str) -> str:
    """The last name of an HDF5 path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def parent_path(path: str) -> str:
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


class NxmxGroups:
    """A file-context attribute named after the spec (``ctx.beams``): the groups at one
    NX_class path below the NXmx entry, as :meth:`FileContext.groups` finds them."""

    def __init__(self, nx_path: str) -> None:
        self.nx_path = nx_path

    def __get__(self, ctx: FileContext, owner: type | None = None) -> list[h5py.Group]:
        return ctx.groups(self.nx_path)


class FileContext:
    """One file under check, opened read-only, plus the files it links to.

    Args:
        path: the file (a master, an integrated file, or a data file).
        sample: how many frames pixel-level rules may decode per image store.
    """

    def __init__(
        self,
        path: Path,
        h5: h5py.File,
        *,
        sample: int = 2,
        read_limit_bytes: int = DEFAULT_READ_LIMIT_BYTES,
    ) -> None:
        self.path = path
        self.h5 = h5
        self.sample = sample
        self.read_limit_bytes = read_limit_bytes
        self.name = path.name
        self._opened: dict[Path, h5py.File | None] = {}
        #: Per-file memo for values several rules derive (chains, axis lists).
        self.cache: dict[str, Any] = {}
        self._objects: dict[tuple[Any, str], Any] = {}
        self._attrs: dict[tuple[Any, str], Any] = {}
        self._groups: dict[str, list[h5py.Group]] = {}
        self.open_errors: dict[Path, str] = {}
        #: Objects that exist but cannot be read, and datasets too large to read, by place.
        self.unreadable: dict[tuple[str | None, str], ReadProblem] = {}
        self.too_large: dict[tuple[str | None, str], ReadProblem] = {}
        #: The rule being evaluated (set by the engine), so read problems name who wanted it.
        self.current_rule: str | None = None

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

    # -- read problems ---------------------------------------------------------------------
    def _file_name_of(self, obj: h5py.HLObject) -> str | None:
        try:
            name = Path(obj.file.filename).name
        except READ_ERRORS:
            return None
        return None if name == self.name else name

    def _note(
        self,
        table: dict[tuple[str | None, str], ReadProblem],
        path: str,
        file_name: str | None,
        detail: str,
    ) -> None:
        problem = table.setdefault((file_name, path), ReadProblem(path, file_name, detail))
        if self.current_rule is not None:
            problem.rules.add(self.current_rule)

    def _note_unreadable(
        self, path: str, error: BaseException, where: h5py.HLObject | None = None
    ) -> None:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        file_name = None if where is None else self._file_name_of(where)
        self._note(self.unreadable, path, file_name, first)

    # -- lookups ---------------------------------------------------------------------------
    def get(self, path: str, base: h5py.Group | None = None) -> h5py.Group | h5py.Dataset | None:
        """The object at ``path`` (absolute, or relative to ``base``), ``None`` if it is absent
        or cannot be opened (then recorded as unreadable, unless an external link: H5-007's).

        Lookups are memoised: the files are read-only for the whole check.
        """
        root = self.h5 if base is None else base
        return _memoised(self._objects, root, path, lambda: self._open(root, path))

    def _open(self, root: h5py.Group, path: str) -> h5py.Group | h5py.Dataset | None:
        try:
            return root[path]
        except READ_ERRORS as error:
            if not self.exists(path, root):
                return None
            link = self.link(root, path)
            if not isinstance(link, h5py.ExternalLink):  # a missing link target is H5-007's
                where = path if path.startswith("/") else f"{root.name.rstrip('/')}/{path}"
                self._note_unreadable(where, error, root)
            return None

    def exists(self, path: str, base: h5py.Group | None = None) -> bool:
        """Whether a link named ``path`` exists, whether or not its object can be read: an
        object that exists but fails to open is unreadable, not missing."""
        root = self.h5 if base is None else base
        try:
            return path in root
        except READ_ERRORS:
            return False

    def missing(self, path: str, base: h5py.Group | None = None) -> bool:
        """True only when nothing is linked at ``path`` (the "required field is missing" case)."""
        return not self.exists(path, base)

    def dataset(self, path: str, base: h5py.Group | None = None) -> h5py.Dataset | None:
        obj = self.get(path, base)
        return obj if isinstance(obj, h5py.Dataset) else None

    def group(self, path: str, base: h5py.Group | None = None) -> h5py.Group | None:
        obj = self.get(path, base)
        return obj if isinstance(obj, h5py.Group) else None

    def link(self, group: h5py.Group, name: str) -> Any:
        try:
            return group.get(name, getlink=True)
        except READ_ERRORS:
            return None

    def has_attr(self, obj: h5py.HLObject, name: str) -> bool:
        """Whether the attribute exists, readable or not (absent is not unreadable)."""
        try:
            return name in obj.attrs
        except READ_ERRORS:
            return False

    def attr(self, obj: h5py.HLObject, name: str) -> Any:
        """An attribute value, ``None`` if absent, unreadable or implausibly large (memoised;
        the last two are recorded as unreadable)."""
        return _memoised(self._attrs, obj, name, lambda: self._read_attr(obj, name))

    def _read_attr(self, obj: h5py.HLObject, name: str) -> Any:
        if not self.has_attr(obj, name):
            return None
        where = f"{obj.name}@{name}"
        try:
            attribute = obj.attrs.get_id(name)
            size = declared_nbytes(attribute.shape or (), attribute.dtype)
            if size > ATTRIBUTE_LIMIT_BYTES:
                self._note(
                    self.unreadable,
                    where,
                    self._file_name_of(obj),
                    f"attribute declares {size} bytes; metadata attributes hold far less",
                )
                return None
            return obj.attrs[name]
        except READ_ERRORS as error:
            self._note_unreadable(where, error, obj)
            return None

    def attr_text(self, obj: h5py.HLObject, name: str) -> str | None:
        return decode_text(self.attr(obj, name))

    def units(self, obj: h5py.HLObject, name: str = "units") -> tuple[str | None, Unit | None]:
        """A units attribute's text and its meaning (either ``None``: absent or unknown)."""
        text = self.attr_text(obj, name)
        return text, (None if text is None else parse_unit(text))

    def fits(self, dataset: h5py.Dataset) -> bool:
        """Whether a whole read of ``dataset`` stays within the read limit; when it does not,
        the dataset is recorded as too large (reported as H5-014, naming the current rule)."""
        try:
            size = declared_nbytes(dataset.shape or (), dataset.dtype)
        except READ_ERRORS as error:
            self._note_unreadable(dataset.name, error, dataset)
            return False
        if size <= self.read_limit_bytes:
            return True
        self._note(self.too_large, dataset.name, self._file_name_of(dataset), f"{size} bytes")
        return False

    def value(self, dataset: h5py.Dataset) -> Any:
        """The whole dataset, ``None`` if it cannot be read (recorded as unreadable) or is
        larger than the read limit (recorded as too large; nothing is allocated)."""
        if not self.fits(dataset):
            return None
        try:
            return dataset[()]
        except (*READ_ERRORS, MemoryError) as error:
            if not self._source_missing(dataset):  # a lost VDS source is H5-001's / H5-006's
                self._note_unreadable(dataset.name, error, dataset)
            return None

    def _source_missing(self, dataset: h5py.Dataset) -> bool:
        try:
            virtual = dataset.is_virtual
        except READ_ERRORS:
            return False
        return virtual and any(source.dataset is None for source in self.vds_sources(dataset))

    def rows(
        self, dataset: h5py.Dataset, start: int, stop: int, *, image_frames: bool = False
    ) -> np.ndarray | None:
        """Rows ``[start, stop)`` of a dataset (a slice within the read limit), or ``None``.

        ``image_frames``: the rows are frames of an image store, whose decoding failures
        are H5-004's finding (not recorded as unreadable objects).
        """
        try:
            row_bytes = declared_nbytes(dataset.shape[1:], dataset.dtype)
            if row_bytes * max(0, stop - start) > self.read_limit_bytes:
                self._note(
                    self.too_large,
                    dataset.name,
                    self._file_name_of(dataset),
                    f"{row_bytes * (stop - start)} bytes for rows {start}..{stop}",
                )
                return None
            return np.asarray(dataset[start:stop])
        except (*READ_ERRORS, MemoryError) as error:
            if not image_frames:
                self._note_unreadable(dataset.name, error, dataset)
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

    def datasets(
        self, group: h5py.Group | None, names: tuple[str, ...] | None = None
    ) -> dict[str, h5py.Dataset]:
        """The readable datasets of a group (those named, or all), by member name."""
        if group is None:
            return {}
        wanted = self.member_names(group) if names is None else names
        found = ((name, self.dataset(name, group)) for name in wanted)
        return {name: dataset for name, dataset in found if dataset is not None}

    @staticmethod
    def member_names(group: h5py.Group) -> list[str]:
        try:
            return list(group.keys())
        except READ_ERRORS:
            return []

    def walk(self) -> Iterator[tuple[str, h5py.Group | h5py.Dataset]]:
        """Every object reachable through hard links, as (path, object), root excluded."""
        return iter(self._walked)

    @cached_property
    def _walked(self) -> list[tuple[str, h5py.Group | h5py.Dataset]]:
        """Pre-order, members by name, each object once (as HDF5's visit does), but an
        object that cannot be opened is recorded as unreadable and the walk goes on."""
        found: list[tuple[str, h5py.Group | h5py.Dataset]] = []
        seen = {_identity(self.h5)}
        if None in seen:
            self._note_unreadable("/", OSError("the root group's object header cannot be read"))
        stack: list[tuple[str, h5py.Group, Iterator[str]]] = [
            ("", self.h5, iter(self.member_names(self.h5)))
        ]
        while stack:
            prefix, group, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            if not isinstance(self.link(group, name), h5py.HardLink):
                continue
            child = self.get(name, group)
            identity = None if child is None else _identity(child)
            if identity is None and child is not None:  # its header is damaged
                self._note_unreadable(f"{prefix}/{name}", OSError("object header unreadable"))
            if identity is None or identity in seen:
                continue
            seen.add(identity)
            path = f"{prefix}/{name}"
            found.append((path, child))
            if isinstance(child, h5py.Group):
                stack.append((path, child, iter(self.member_names(child))))
        return found

    # -- the NXmx tree, named after the spec (as dials/nxmx names it) -------------------
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

    def groups(self, nx_path: str) -> list[h5py.Group]:
        """The groups at an NX_class path below the NXmx entry, as NXmx nests them
        (``NXentry/NXinstrument/NXbeam``: every NXbeam of every NXinstrument); memoised."""
        if nx_path not in self._groups:
            parent, _, nx_class = nx_path.rpartition("/")
            if not parent:
                found = [self.entry] if nx_class == "NXentry" and self.entry is not None else []
            else:
                found = [
                    c for g in self.groups(parent) for c in self.children_of_class(g, nx_class)
                ]
            self._groups[nx_path] = found
        return list(self._groups[nx_path])

    def in_entry(self, nx_class: str) -> list[h5py.Group]:
        return self.groups(f"NXentry/{nx_class}")

    instruments = NxmxGroups("NXentry/NXinstrument")
    samples = NxmxGroups("NXentry/NXsample")
    sources = NxmxGroups("NXentry/NXsource")
    beams = NxmxGroups("NXentry/NXinstrument/NXbeam")
    attenuators = NxmxGroups("NXentry/NXinstrument/NXattenuator")
    detector_groups = NxmxGroups("NXentry/NXinstrument/NXdetector_group")
    detectors = NxmxGroups("NXentry/NXinstrument/NXdetector")
    modules = NxmxGroups("NXentry/NXinstrument/NXdetector/NXdetector_module")

    def transformation_axes(self, group: h5py.Group) -> list[h5py.Dataset]:
        """The datasets of a group's NXtransformations members (a sample's goniometer axes)."""
        return [
            dataset
            for transformations in self.children_of_class(group, "NXtransformations")
            for name in self.member_names(transformations)
            if (dataset := self.dataset(name, transformations)) is not None
        ]

    @cached_property
    def data_group(self) -> h5py.Group | None:
        """``/entry/data`` by name (layout rules key on the path, as readers do)."""
        return self.group("data", self.entry) if self.entry is not None else None

    # -- Jungfraujoch's extensions (docs/HDF5.md §4), by name ------------------------------
    def extension(self, name: str) -> h5py.Group | None:
        """An extension group of the entry by name: ``MX``, ``image``, ``azint``, ``user``..."""
        return None if self.entry is None else self.group(name, self.entry)

    @property
    def mx(self) -> h5py.Group | None:
        """``/entry/MX``: the CXI peak lists and per-image analysis results."""
        return self.extension("MX")

    def mx_dataset(self, name: str) -> h5py.Dataset | None:
        return None if self.mx is None else self.dataset(name, self.mx)

    @cached_property
    def reflection_tables(self) -> list[h5py.Group]:
        """The member groups of ``/entry/reflections`` (``image_NNNNNN``), in name order."""
        root = self.extension("reflections")
        if root is None:
            return []
        groups = (self.group(name, root) for name in sorted(self.member_names(root)))
        return [group for group in groups if group is not None]

    def detector_specific(self, name: str) -> h5py.Dataset | None:
        """``detectorSpecific/<name>`` of the first detector that has it."""
        for detector in self.detectors:
            dataset = self.dataset(f"detectorSpecific/{name}", detector)
            if dataset is not None:
                return dataset
        return None

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
        image = self.image_dataset
        if self.legacy_links and image is None:
            return "legacy"
        if image is not None and not self.legacy_links:
            return "vds" if image.is_virtual else "integrated"
        return None

    @cached_property
    def _references(self) -> list[Reference]:
        refs: list[Reference] = []
        for path, obj in [*self.walk(), ("", self.h5)]:  # the root's own links last
            if isinstance(obj, h5py.Group):
                for name in self.member_names(obj):
                    link = self.link(obj, name)
                    if isinstance(link, h5py.ExternalLink):
                        target = (link.filename, link.path)
                        refs.append(self._reference("external-link", f"{path}/{name}", *target))
            elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
                try:
                    sources = obj.virtual_sources()
                except READ_ERRORS:
                    continue
                for source in sources:
                    refs.append(self._reference("vds", path, source.file_name, source.dset_name))
        return refs

    def _reference(self, kind: str, path: str, file_name: str, object_path: str) -> Reference:
        return Reference(kind, path, file_name, object_path, self.resolve_name(file_name))

    def references(self) -> list[Reference]:
        """Every external link and VDS mapping in the checked file (hard-link walk)."""
        return list(self._references)

    def resolve_name(self, file_name: str) -> Path | None:
        """Where libhdf5 finds a link/VDS target: the checked file itself for ``.``, else
        relative names against this file's directory (HDF5 virtual datasets, external links)."""
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
        image = self.image_dataset
        if self.layout == "integrated" and image is not None:
            stores.append(ImageStore(f"{self.name}:{image.name}", self.name, image, 0))
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
        elif self.layout == "vds" and image is not None:
            for source in self.vds_sources(image):
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
        except READ_ERRORS:
            return []
        sources = []
        for mapping in maps:
            resolved = self.resolve_name(mapping.file_name)
            target = None
            if resolved is not None and resolved.is_file():
                handle = self.h5 if resolved == self.path else self.open_related(resolved)
                if handle is not None:
                    target = self.dataset(mapping.dset_name, handle)
            frames, first, virtual_points, source_points = mapped_frames(
                mapping.vspace, mapping.src_space
            )
            if source_points is None:  # the whole source dataset
                source_points = int(target.size) if target is not None else -1
            sources.append(
                VdsSource(
                    mapping.file_name,
                    mapping.dset_name,
                    resolved,
                    target,
                    frames,
                    first,
                    virtual_points,
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
