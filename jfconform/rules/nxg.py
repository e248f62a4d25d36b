"""General NeXus rules (NXG): classes, names, units, timestamps, types (NeXus design and base
classes)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import h5py

from jfconform.context import FileContext, decode_text, is_string_dataset, leaf
from jfconform.field_rules import (
    DETECTOR,
    ENTRY,
    NXDL,
    Field,
    FieldRule,
    parse_iso8601,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.nxdl_tables import BASE_CLASSES, CONTRIBUTED_BASE_CLASSES, NXMX_FIELDS
from jfconform.registry import rule
from jfconform.units import (
    ANGLE,
    AREA,
    CURRENT,
    INVERSE_LENGTH,
    LENGTH,
    NXDL_CATEGORIES,
    PIXEL,
)

#: NX_class values NeXus defines (standard and contributed base classes).
KNOWN_CLASSES = BASE_CLASSES | CONTRIBUTED_BASE_CLASSES

#: NX_CHAR fields of NXmx (leaf names), checked for string storage wherever they occur;
#: fields that declare a units category hold numbers whatever their declared type.
CHAR_FIELDS = frozenset(
    name
    for fields in NXMX_FIELDS.values()
    for name, spec in fields.items()
    if spec.type in ("NX_CHAR", "NX_DATE_TIME") and spec.units is None
)

#: Expected unit dimensions by field name: NXmx's units categories, then what NXmx leaves
#: to base classes and what Jungfraujoch documents with units (docs/HDF5.md §3-§4).
FIELD_DIMENSIONS: dict[str, tuple[str, ...]] = {
    **{
        name: (NXDL_CATEGORIES[spec.units],)
        for fields in NXMX_FIELDS.values()
        for name, spec in fields.items()
        if spec.units is not None and spec.units in NXDL_CATEGORIES
    },
    # NXmx says NX_LENGTH; DIALS and Jungfraujoch store the beam centre in pixels
    **dict.fromkeys(("beam_center_x", "beam_center_y"), (LENGTH, PIXEL)),
    # the NXdetector and NXsource base classes
    **dict.fromkeys(("x_pixel_size", "y_pixel_size"), (LENGTH,)),
    "current": (CURRENT,),
    # Jungfraujoch's extensions, NXreflections' d in Å
    **dict.fromkeys(("detector_distance", "resolutionEstimate", "d"), (LENGTH,)),
    **dict.fromkeys(("peakXPosRaw", "peakYPosRaw", "beam_corr_x", "beam_corr_y"), (PIXEL,)),
    **dict.fromkeys(("peakDistEwaldSphere", "profileRadius"), (INVERSE_LENGTH,)),
    **dict.fromkeys(("mosaicity", "imageScaleMosaicity"), (ANGLE,)),
    **dict.fromkeys(("bFactor", "imageScaleBFactor"), (AREA,)),
}

#: Fields DIALS reads as scalars (``h5scalar``; a 1-element 1-D array is tolerated, NXG-009).
SCALAR_FIELDS = frozenset(
    """distance count_time frame_time beam_center_x beam_center_y sensor_thickness
    x_pixel_size y_pixel_size bit_depth_readout saturation_value underload_value
    detector_readout_time dead_time""".split()
)

FIELD_RULES = (
    FieldRule(
        "NXG-007",
        "datetime-not-iso",
        W,
        Field(ENTRY, ENTRY.nxdl_names("NX_DATE_TIME"), kind=NXDL),
        """NX_DATE_TIME values are strict ISO 8601 with an explicit zone

        Spec: NX_DATE_TIME (ISO 8601); DIALS nxmx strict parse
        Hint: write e.g. 2026-11-22T10:00:00Z or 2026-11-22T10:00:00+01:00""",
    ),
    FieldRule(
        "NXG-008",
        "boolean-encoding",
        W,
        Field(DETECTOR, DETECTOR.nxdl_names("NX_BOOLEAN"), kind=NXDL),
        """NX_BOOLEAN fields stored as bool, 0/1 integers or 'true'/'false'

        Spec: NX_BOOLEAN
        Hint: store booleans as HDF5 bool (h5py: numpy bool) or 0/1 integers""",
    ),
)
register_rows(FIELD_RULES)

_NAME = re.compile(r"^[a-zA-Z0-9_]([a-zA-Z0-9_.]*[a-zA-Z0-9_])?$")
_STYLE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _groups(ctx: FileContext) -> Iterator[tuple[str, h5py.Group]]:
    for path, obj in ctx.walk():
        if isinstance(obj, h5py.Group):
            yield path, obj


@rule("NXG-001", "nx-class-missing", E)
def nx_class_missing(ctx: FileContext) -> Iterator[Issue]:
    """Root holds an NXentry; every group has a string NX_class

    Spec: NeXus design (NX_class attribute); NeXus NXroot
    Hint: add the string attribute NX_class (e.g. NXentry, NXcollection) to the group
    """
    if not ctx.entries:
        yield Issue(
            "/",
            "no group at the root has NX_class = NXentry",
            "write the entry group with the attribute NX_class='NXentry'",
        )
    for path, group in _groups(ctx):
        value = ctx.attr(group, "NX_class")
        if value is None:
            yield Issue(path, "group has no NX_class attribute; NeXus readers will not see it")
        elif decode_text(value) is None:
            yield Issue(
                path,
                f"NX_class is not a string ({type(value).__name__})",
                "store NX_class as a (UTF-8/ASCII) string attribute",
            )


@rule("NXG-002", "nx-class-unknown", W)
def nx_class_unknown(ctx: FileContext) -> Iterator[Issue]:
    """NX_class values are known base-class names

    Spec: NeXus base classes
    Hint: use a NeXus base class name, or NXcollection for non-standard content
    """
    for path, group in _groups(ctx):
        value = ctx.nx_class(group)
        if value is not None and value not in KNOWN_CLASSES:
            yield Issue(path, f"NX_class {value!r} is not a NeXus base class")


@rule("NXG-003", "root-file-attributes", W)
def root_file_attributes(ctx: FileContext) -> Iterator[Issue]:
    """Root attributes file_name and file_time present; file_name is the real name

    Spec: NXmx/NXroot; Jungfraujoch docs/HDF5.md §3
    Hint: set root attributes file_name (final base name) and file_time (ISO 8601 with zone)
    """
    for name in ("file_name", "file_time"):
        if not ctx.has_attr(ctx.h5, name):  # unreadable is H5-013's finding, not missing
            yield Issue("/", f"root attribute {name} is missing")
    file_name = ctx.attr_text(ctx.h5, "file_name")
    file_time = ctx.attr_text(ctx.h5, "file_time")
    if file_name is not None and file_name.rsplit("/", 1)[-1] != ctx.name:
        yield Issue("/", f"root file_name {file_name!r} differs from the file's name {ctx.name!r}")
    if file_time is not None and parse_iso8601(file_time) is None:
        yield Issue("/", f"root file_time {file_time!r} is not ISO 8601 with a zone")


@rule("NXG-004", "default-attribute-target", I)
def default_attribute_target(ctx: FileContext) -> Iterator[Issue]:
    """@default on root / entry names an existing NXentry / NXdata

    Spec: NeXus NXroot/NXentry @default
    Hint: point @default at an existing child group of the right class
    """
    checks = [("/", ctx.h5, "NXentry")] + [(e.name, e, "NXdata") for e in ctx.entries]
    for path, group, wanted in checks:
        target = ctx.attr_text(group, "default")
        if target is None:
            continue
        child = ctx.group(target, group)
        if child is None or ctx.nx_class(child) != wanted:
            yield Issue(path, f"@default = {target!r} does not name a {wanted} group here")


@rule("NXG-005", "name-not-nexus", E)
def name_not_nexus(ctx: FileContext) -> Iterator[Issue]:
    """Names match the NeXus name regex (E); upper case / leading digit / dot noted (I)

    Spec: NeXus datarules (name regex, 63 chars)
    Hint: rename to letters, digits and underscores (no spaces), at most 63 characters
    """
    styled: list[str] = []
    for path, _obj in ctx.walk():
        name = leaf(path)
        if not _NAME.match(name) or len(name) > 63:
            yield Issue(path, f"name {name!r} breaks the NeXus name rule")
        elif not _STYLE.match(name):
            styled.append(path)
    if styled:
        examples = ", ".join(styled[:3])
        yield Issue(
            "/",
            f"{len(styled)} names use upper case, a leading digit or a dot "
            f"(e.g. {examples}); legal but validators may note them",
            "nothing to fix unless a strict validator is used",
            severity=I,
        )


@rule("NXG-006", "units-unparseable", W)
def units_unparseable(ctx: FileContext) -> Iterator[Issue]:
    """units attributes are scalar strings that parse and fit the field's category

    Spec: NeXus units categories; DIALS nxmx (pint)
    Hint: write a pint-parseable spelling of the right kind, e.g. m, mm, angstrom, s, eV, deg
    """
    for path, obj in ctx.walk():
        if not isinstance(obj, h5py.Dataset) or "units" not in obj.attrs:
            continue
        text, unit = ctx.units(obj)
        if text is None:
            yield Issue(path, "units attribute is not a scalar string")
            continue
        if unit is None:
            yield Issue(path, f"units {text!r} is not a known unit spelling (pint cannot read it)")
            continue
        if ctx.attr(obj, "transformation_type") is not None:
            continue  # axes are judged by NXT-005
        expected = FIELD_DIMENSIONS.get(leaf(path))
        if expected and unit.dimension not in expected:
            yield Issue(
                path, f"units {text!r} is a {unit.dimension}, expected {' or '.join(expected)}"
            )


@rule("NXG-009", "scalar-as-array", I)
def scalar_as_array(ctx: FileContext) -> Iterator[Issue]:
    """Scalars are 0-d datasets (1-element 1-D arrays tolerated)

    Spec: DIALS nxmx h5scalar
    Hint: write scalars as 0-d datasets
    """
    for detector in ctx.detectors:
        for name in SCALAR_FIELDS:
            dataset = ctx.dataset(name, detector)
            if dataset is not None and dataset.shape == (1,):
                yield Issue(dataset.name, f"{name} is a 1-element array, not a 0-d scalar")


@rule("NXG-010", "char-not-string", E)
def char_not_string(ctx: FileContext) -> Iterator[Issue]:
    """NX_CHAR fields are HDF5 string types

    Spec: NeXus design (NX_CHAR)
    Hint: store the value as a string (fixed or variable length, UTF-8/ASCII)
    """
    for path, obj in ctx.walk():
        if isinstance(obj, h5py.Dataset) and leaf(path) in CHAR_FIELDS:
            if not is_string_dataset(obj):
                yield Issue(path, f"{leaf(path)} is NX_CHAR but stored as {obj.dtype}")


@rule("NXG-011", "signal-target", E)
def signal_target(ctx: FileContext) -> Iterator[Issue]:
    """NXdata @signal names an existing member (E; W for 'data' in a legacy master); absent (W)

    Spec: NXdata @signal; dxtbx
    Hint: set NXdata/@signal to the name of the image dataset (e.g. 'data')
    """
    for path, group in _groups(ctx):
        if ctx.nx_class(group) != "NXdata":
            continue
        members = ctx.member_names(group)
        if not members:
            continue  # nothing to signal: the missing data is NXMX-006's / JF-003's finding
        signal = ctx.attr_text(group, "signal")
        if signal is None:
            yield Issue(
                path, "NXdata has no @signal; readers fall back to the first child", severity=W
            )
        elif signal not in members:
            if _legacy_links_stand_in(ctx, group, signal):
                yield Issue(
                    path,
                    "@signal = 'data' but this legacy master holds only data_NNNNNN links; "
                    "readers follow the links (nxvalidate accepts it)",
                    "point @signal at the first link, e.g. 'data_000001'",
                    severity=W,
                )
            else:
                yield Issue(path, f"@signal = {signal!r} names no readable member of the group")


def _legacy_links_stand_in(ctx: FileContext, group: h5py.Group, signal: str) -> bool:
    """A legacy master's ``/entry/data`` whose data_NNNNNN links stand in for ``data``."""
    return (
        signal == "data"
        and ctx.layout == "legacy"
        and ctx.data_group is not None
        and group.id == ctx.data_group.id
    )
