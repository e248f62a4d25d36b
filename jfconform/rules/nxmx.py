"""NXmx application-definition rules (NXMX), conformance.md §1 and §7.2.

The field rules are rows of ``FIELD_RULES``, with their requirements read from the NXmx
definition where they say ``NXDL``; the rules below the table need logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import h5py
import numpy as np

from jfconform import chains
from jfconform.context import FileContext
from jfconform.field_rules import (
    ANY,
    ATTENUATOR,
    BEAM,
    DATA_GROUP,
    DEPRECATED,
    DETECTOR,
    ENTRY,
    FLOAT,
    FRAMES,
    IMAGE,
    IMAGE_RANK,
    INSTRUMENT,
    INTEGER,
    MODULE,
    MORE,
    NUMERIC,
    NXDATA,
    NXDL,
    PRESENT,
    SAMPLE,
    SOURCE,
    Field,
    FieldRule,
    Units,
    parse_iso8601,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.units import LENGTH

#: A detector-placing translation: its attributes and units (NXmx NXdetector_module).
TRANSLATION = (("transformation_type", "translation"), ("vector", PRESENT), ("depends_on", PRESENT))
TRANSLATION_UNITS = Units((LENGTH,), known=True)
#: NXmx declares these in NXdetector without a type; the NXdetector base class says NX_FLOAT.
PIXEL_SIZES = ("x_pixel_size", "y_pixel_size")

FIELD_RULES = (
    FieldRule(
        "NXMX-002",
        "start-time-missing",
        E,
        Field(ENTRY, "start_time", need=NXDL),
        """start_time present

        Spec: NXmx NXentry/start_time
        Hint: write /entry/start_time (ISO 8601 with zone)""",
    ),
    FieldRule(
        "NXMX-003",
        "end-time-estimated-missing",
        E,
        Field(ENTRY, "end_time_estimated", need=NXDL),
        """end_time_estimated present

        Spec: NXmx NXentry/end_time_estimated
        Hint: write /entry/end_time_estimated (required even when end_time is written)""",
    ),
    FieldRule(
        "NXMX-005",
        "nxdata-missing",
        E,
        Field(NXDATA, need=NXDL),
        """NXentry has an NXdata group

        Spec: NXmx NXentry/NXdata
        Hint: add /entry/data with NX_class='NXdata'""",
    ),
    FieldRule(
        "NXMX-006",
        "data-rank",
        W,
        Field(DATA_GROUP, "data", shapes=((FRAMES, ANY, ANY), (FRAMES, ANY, ANY, ANY))),
        """NXdata/data has rank 3 or 4 (legacy data_NNNNNN links stand in)

        Spec: NXmx NXdata/data [nP,i,j(,k)]; Jungfraujoch HDF5.md legacy
        Hint: store images as [frames, slow, fast] in /entry/data/data""",
    ),
    FieldRule(
        "NXMX-008",
        "sample-name-missing",
        E,
        (Field(SAMPLE, need=NXDL), Field(SAMPLE, "name", need=NXDL)),
        """NXsample present with name

        Spec: NXmx NXsample/name
        Hint: add /entry/sample (NXsample) with a name""",
    ),
    FieldRule(
        "NXMX-009",
        "sample-depends-on-missing",
        E,
        Field(SAMPLE, "depends_on", need=NXDL),
        """NXsample depends_on present (a path, or '.' without goniometer)

        Spec: NXmx NXsample/depends_on
        Hint: write sample/depends_on naming the innermost goniometer axis, or '.' for stills""",
    ),
    FieldRule(
        "NXMX-011",
        "instrument-name-missing",
        E,
        (Field(INSTRUMENT, need=NXDL), Field(INSTRUMENT, "name", need=NXDL)),
        """NXinstrument present with name

        Spec: NXmx NXinstrument/name
        Hint: add /entry/instrument (NXinstrument) with a name (the beamline)""",
    ),
    FieldRule(
        "NXMX-013",
        "attenuator-transmission-range",
        I,
        Field(ATTENUATOR, "attenuator_transmission", within=(0.0, 1.0)),
        """attenuator_transmission in [0, 1]

        Spec: NXmx NXattenuator
        Hint: store transmission as a fraction 0..1""",
    ),
    FieldRule(
        "NXMX-015",
        "detector-missing",
        E,
        Field(DETECTOR, need=NXDL),
        """>= 1 NXdetector in NXinstrument

        Spec: NXmx NXinstrument/NXdetector
        Hint: add instrument/detector with NX_class='NXdetector'""",
    ),
    FieldRule(
        "NXMX-016",
        "module-missing",
        E,
        Field(MODULE, need=NXDL),
        """Each NXdetector has >= 1 NXdetector_module

        Spec: NXmx NXdetector/NXdetector_module
        Hint: add detector/module (NX_class='NXdetector_module'), one covering the whole frame""",
    ),
    FieldRule(
        "NXMX-017",
        "module-origin-size",
        E,
        Field(MODULE, ("data_origin", "data_size"), need=NXDL, kind=NXDL, size=IMAGE_RANK),
        """data_origin, data_size are integer arrays of length (data rank - 1), slow→fast

        Spec: NXmx NXdetector_module data_origin/data_size
        Hint: write data_origin=[0, 0] and data_size=[ny, nx] as integer arrays (slow, fast)""",
    ),
    FieldRule(
        "NXMX-019",
        "pixel-direction",
        E,
        Field(
            MODULE,
            ("fast_pixel_direction", "slow_pixel_direction"),
            need=NXDL,
            units=TRANSLATION_UNITS,
            attributes=TRANSLATION,
        ),
        """fast/slow_pixel_direction present: length units, translation, vector, depends_on

        Spec: NXmx NXdetector_module fast/slow_pixel_direction
        Hint: write the pixel pitch with units, transformation_type='translation', vector,
        depends_on""",
    ),
    FieldRule(
        "NXMX-020",
        "module-offset",
        W,
        Field(MODULE, "module_offset", units=TRANSLATION_UNITS, attributes=TRANSLATION),
        """module_offset (if present) is a translation with vector and depends_on

        Spec: NXmx NXdetector_module/module_offset
        Hint: give module_offset units, transformation_type='translation', vector, depends_on""",
    ),
    FieldRule(
        "NXMX-021",
        "sensor-material-missing",
        E,
        Field(DETECTOR, "sensor_material", need=NXDL),
        """sensor_material present (string)

        Spec: NXmx NXdetector/sensor_material
        Hint: write detector/sensor_material, e.g. 'Si'""",
    ),
    FieldRule(
        "NXMX-022",
        "sensor-thickness-missing",
        E,
        Field(DETECTOR, "sensor_thickness", need=NXDL, units=Units((LENGTH,), known=True)),
        """sensor_thickness present with length units

        Spec: NXmx NXdetector/sensor_thickness
        Hint: write detector/sensor_thickness with units, e.g. 0.00032 with units='m'""",
    ),
    FieldRule(
        "NXMX-024",
        "detector-field-types",
        W,
        (
            Field(DETECTOR, DETECTOR.nxdl_names("NX_FLOAT") + PIXEL_SIZES, kind=FLOAT),
            Field(DETECTOR, DETECTOR.nxdl_names("NX_NUMBER", excluding=("data",)), kind=NUMERIC),
            Field(DETECTOR, DETECTOR.nxdl_names("NX_INT", excluding=("pixel_mask",)), kind=INTEGER),
            Field(
                DETECTOR,
                ("flatfield", "flatfield_errors", "angular_calibration"),
                shapes=((MORE, IMAGE),),
            ),
            Field(DETECTOR, "countrate_correction_lookup_table", shapes=((ANY,),)),
        ),
        """Detector fields, when present, have their NXDL type (NX_FLOAT is float) and shape

        Spec: NXmx NXdetector (field types and shapes)
        Hint: NX_FLOAT fields as floats, frame-shaped calibration arrays, 1-D countrate table""",
    ),
    FieldRule(
        "NXMX-025",
        "flatfield-error-deprecated",
        W,
        Field(DETECTOR, "flatfield_error", need=DEPRECATED),
        """Deprecated flatfield_error absent

        Spec: NXmx NXdetector/flatfield_error
        Hint: rename flatfield_error to flatfield_errors""",
    ),
    FieldRule(
        "NXMX-026",
        "pixel-mask-shape",
        W,
        Field(DETECTOR, "pixel_mask", kind=INTEGER, shapes=((IMAGE,), (ANY, IMAGE)), at_least=0),
        """pixel_mask integer, frame-shaped, values >= 0

        Spec: NXmx NXdetector/pixel_mask
        Hint: store pixel_mask as uint32 [ny, nx] (NeXus bit meanings)""",
    ),
    FieldRule(
        "NXMX-027",
        "beam-missing",
        E,
        Field(BEAM, need=NXDL),
        """NXbeam present inside NXinstrument

        Spec: NXmx NXinstrument/NXbeam
        Hint: move/add the beam group to /entry/instrument/beam (NX_class='NXbeam')""",
    ),
    FieldRule(
        "NXMX-028",
        "incident-wavelength",
        E,
        Field(
            BEAM,
            "incident_wavelength",
            need=NXDL,
            kind=NXDL,
            units=NXDL,
            shapes=((), (ANY,), (FRAMES, ANY)),
        ),
        """incident_wavelength present, float, wavelength units, allowed shape

        Spec: NXmx NXbeam/incident_wavelength
        Hint: write beam/incident_wavelength as a float with units='angstrom'""",
    ),
    FieldRule(
        "NXMX-029",
        "beam-optional-shape",
        W,
        (
            Field(BEAM, "incident_beam_size", shapes=((2,),)),
            Field(BEAM, "profile", values=NXDL),
            Field(BEAM, "incident_polarization_stokes", shapes=((ANY, 4),)),
        ),
        """incident_beam_size [2]; profile enumeration; incident_polarization_stokes [nP,4]

        Spec: NXmx NXbeam
        Hint: profile is one of Gaussian, Airy, top-hat, rectangular; beam size is [2]""",
    ),
    FieldRule(
        "NXMX-031",
        "beam-deprecated-fields",
        W,
        Field(BEAM, ("incident_wavelength_weight", "incident_polarisation_stokes"), need=NXDL),
        """Deprecated incident_wavelength_weight / incident_polarisation_stokes not used

        Spec: NXmx NXbeam deprecated spellings
        Hint: use incident_wavelength_weights / incident_polarization_stokes""",
    ),
    FieldRule(
        "NXMX-032",
        "source-missing",
        E,
        (Field(SOURCE, need=NXDL), Field(SOURCE, "name", need=NXDL)),
        """NXsource directly in NXentry with name

        Spec: NXmx NXentry/NXsource
        Hint: add /entry/source (NX_class='NXsource') with a name""",
    ),
)
register_rows(FIELD_RULES)


def _entry_path(ctx: FileContext) -> str:
    return ctx.entry.name if ctx.entry is not None else "/entry"


@rule("NXMX-001", "definition-not-nxmx", E)
def definition_not_nxmx(ctx: FileContext) -> Iterator[Issue]:
    """An NXentry with scalar definition = 'NXmx' exists

    Spec: NXmx NXentry/definition
    Hint: write /entry/definition = 'NXmx' (a scalar string)
    """
    for entry in ctx.entries:
        if ctx.text(ctx.dataset("definition", entry)) == "NXmx":
            return
    found = ctx.text(ctx.dataset("definition", ctx.entry)) if ctx.entry is not None else None
    yield Issue(
        f"{_entry_path(ctx)}/definition",
        f"no NXentry declares definition 'NXmx' (found {found!r}); DIALS sees no entry",
    )


@rule("NXMX-004", "times-and-version", I)
def times_and_version(ctx: FileContext) -> Iterator[Issue]:
    """end_time >= start_time; @version (if present) is the text '1.0'

    Spec: NXmx NXentry end_time, @version
    Hint: write end_time after start_time and @version as the string '1.0'
    """
    if ctx.entry is None:
        return
    start = ctx.text(ctx.dataset("start_time", ctx.entry))
    end = ctx.text(ctx.dataset("end_time", ctx.entry))
    start_t = parse_iso8601(start) if start else None
    end_t = parse_iso8601(end) if end else None
    if start_t and end_t and end_t < start_t:
        yield Issue(f"{ctx.entry.name}/end_time", f"end_time {end} is before start_time {start}")
    version = ctx.attr(ctx.entry, "version")
    if version is not None and ctx.attr_text(ctx.entry, "version") != "1.0":
        yield Issue(ctx.entry.name, f"@version = {version!r}, expected the text '1.0'")


@rule("NXMX-007", "data-scaling-shape", I)
def data_scaling_shape(ctx: FileContext) -> Iterator[Issue]:
    """data_scaling_factor / data_offset shapes are allowed ones

    Spec: NXmx NXdata data_scaling_factor/data_offset
    Hint: use a scalar, the frame shape, [nP, 1] or [nP] + frame shape
    """
    group, frame, n = ctx.data_group, ctx.frame_shape, ctx.n_frames
    if group is None:
        return
    allowed: set[tuple[int, ...]] = {(), (1,)}
    if frame:
        allowed.add(tuple(frame))
        if n is not None:
            allowed |= {(n, 1), (n, *frame)}
    for name in ("data_scaling_factor", "data_offset"):
        dataset = ctx.dataset(name, group)
        if dataset is None:
            continue
        if dataset.shape not in allowed:
            yield Issue(dataset.name, f"{name} has shape {dataset.shape}, not an allowed one")
        if name == "data_scaling_factor":
            yield Issue(dataset.name, "DIALS nxmx reads 'data_scale_factor', not this name")


def _moving_axes(ctx: FileContext, sample: h5py.Group) -> list[h5py.Dataset]:
    """The sample's transformation axes whose values change during the scan."""
    moving = []
    for axis in ctx.transformation_axes(sample):
        values = ctx.array(axis) if axis.dtype.kind in "iuf" else None
        if values is not None and values.size > 1 and np.ptp(values.astype(float)) > 0:
            moving.append(axis)
    return moving


def _dataset_ids(ctx: FileContext, paths: Iterable[str]) -> set[h5py.h5d.DatasetID]:
    """The objects behind these paths: hard links to one axis count once."""
    return {dataset.id for path in paths if (dataset := ctx.dataset(path)) is not None}


@rule("NXMX-010", "scan-axis-not-in-chain", W)
def scan_axis_not_in_chain(ctx: FileContext) -> Iterator[Issue]:
    """For scans the sample chain exists and contains a moving axis; '.' only for stills

    Spec: NXmx NXsample/NXtransformations
    Hint: point sample/depends_on at the scanned axis (e.g. transformations/omega)
    """
    n = ctx.n_frames
    for sample in ctx.samples:
        start = chains.of_group(ctx, sample)
        if start is None:
            continue
        moving = _moving_axes(ctx, sample)
        if start.value.strip() == ".":
            if moving:
                yield Issue(
                    start.where, f"depends_on is '.' but {moving[0].name} moves during the scan"
                )
            continue
        chain = chains.walk(ctx, start)
        if chain.end != "dot":
            continue  # a broken chain is NXT-001's / NXT-002's finding
        in_chain = _dataset_ids(ctx, chain.axes)
        if n and n > 1 and moving and not any(axis.id in in_chain for axis in moving):
            yield Issue(
                start.where, f"the sample chain does not contain the moving axis {moving[0].name}"
            )


@rule("NXMX-012", "time-zone", W)
def time_zone(ctx: FileContext) -> Iterator[Issue]:
    """time_zone present (W); a bare offset is noted (I)

    Spec: NXmx NXinstrument/time_zone
    Hint: write instrument/time_zone, e.g. '+01:00' or 'Europe/Zurich'
    """
    for instrument in ctx.instruments:
        dataset = ctx.dataset("time_zone", instrument)
        if ctx.missing("time_zone", instrument):
            yield Issue(f"{instrument.name}/time_zone", "recommended field time_zone is missing")
        elif dataset is not None:
            yield Issue(
                dataset.name,
                "time_zone is declared NX_DATE_TIME; validators reject a bare offset here",
                "nothing to fix for DIALS; noted for validators",
                severity=I,
            )


@rule("NXMX-014", "detector-group", W)
def detector_group(ctx: FileContext) -> Iterator[Issue]:
    """NXdetector_group present and consistent

    Spec: NXmx NXdetector_group (recommended)
    Hint: add instrument/detector_group with group_names, group_index (1..), group_parent (-1)
    """
    for instrument in ctx.instruments:
        if not ctx.children_of_class(instrument, "NXdetector_group"):
            yield Issue(instrument.name, "recommended NXdetector_group is missing")
    for group in ctx.detector_groups:
        missing = [
            n for n in ("group_names", "group_index", "group_parent") if ctx.missing(n, group)
        ]
        if missing:
            yield Issue(group.name, f"missing {', '.join(missing)}")
            continue
        index = ctx.array(ctx.dataset("group_index", group))
        parent = ctx.array(ctx.dataset("group_parent", group))
        if index is None or parent is None or index.dtype.kind not in "iu":
            yield Issue(group.name, "group_index/group_parent are not readable integers")
            continue
        index, parent = index.reshape(-1), parent.reshape(-1)
        if len(set(index.tolist())) != index.size or (index < 1).any():
            yield Issue(f"{group.name}/group_index", "group_index must be unique and >= 1")
        if parent.size != index.size or not (parent == -1).any():
            yield Issue(
                f"{group.name}/group_parent",
                "group_parent must match group_index in length and hold a -1",
            )


def _int_vector(ctx: FileContext, dataset: h5py.Dataset | None) -> np.ndarray | None:
    if dataset is None or dataset.dtype.kind not in "iu":
        return None
    value = ctx.array(dataset)
    return None if value is None else value.reshape(-1).astype(np.int64)


@rule("NXMX-018", "module-outside-frame", E)
def module_outside_frame(ctx: FileContext) -> Iterator[Issue]:
    """Module hyperslab lies inside the frame; a single module covers it all

    Spec: NXmx NXdetector_module hyperslab
    Hint: data_origin + data_size (slow, fast) must fit the image shape of /entry/data/data
    """
    frame = ctx.frame_shape
    if frame is None:
        return
    for detector in ctx.detectors:
        modules = ctx.children_of_class(detector, "NXdetector_module")
        for module in modules:
            origin, size, stride = (
                _int_vector(ctx, ctx.dataset(name, module))
                for name in ("data_origin", "data_size", "data_stride")
            )
            if origin is None or size is None or not origin.size == size.size == len(frame):
                continue
            if stride is None or stride.size != len(frame):
                stride = np.ones(len(frame), dtype=np.int64)
            end = origin + (size - 1) * stride + 1
            if (origin < 0).any() or (end > np.asarray(frame)).any():
                yield Issue(
                    module.name,
                    f"hyperslab origin {origin.tolist()} size "
                    f"{size.tolist()} exceeds the frame {list(frame)}",
                )
            elif len(modules) == 1 and (origin.any() or (end != np.asarray(frame)).any()):
                yield Issue(
                    module.name,
                    f"the only module covers {size.tolist()} of the frame {list(frame)}",
                )


@rule("NXMX-023", "detector-recommended", W)
def detector_recommended(ctx: FileContext) -> Iterator[Issue]:
    """Recommended detector fields present (description, distance, count_time, ...)

    One finding per detector listing what is missing; in the legacy layout the data_NNNNNN links
    stand in for the recommended ``data``.

    Spec: NXmx NXdetector (recommended fields)
    Hint: write the recommended NXdetector fields listed in the message
    """
    recommended = DETECTOR.nxdl_names(need="recommended")
    for detector in ctx.detectors:
        names = set(ctx.member_names(detector))
        missing = [n for n in recommended if n not in names]
        if ctx.layout == "legacy" and "data" in missing:
            missing.remove("data")
        if missing:
            yield Issue(detector.name, f"recommended fields missing: {', '.join(missing)}")


@rule("NXMX-030", "flux-attribute", I)
def flux_attribute(ctx: FileContext) -> Iterator[Issue]:
    """@flux names one of the flux fields

    Spec: NXmx NXbeam @flux
    Hint: set beam/@flux to flux, total_flux, flux_integrated or total_flux_integrated
    """
    for beam in ctx.beams:
        flux = ctx.attr_text(beam, "flux")
        if flux is not None and flux not in ctx.member_names(beam):
            yield Issue(beam.name, f"@flux = {flux!r} names no member of the beam")


@rule("NXMX-033", "frame-count-consistent", W)
def frame_count_consistent(ctx: FileContext) -> Iterator[Issue]:
    """Frames of data = length of scanned axes = per-frame arrays

    Spec: NXmx nP
    Hint: write one axis value per frame (or one value for a fixed axis)
    """
    n = ctx.n_frames
    if not n:
        return
    in_chains = _dataset_ids(ctx, chains.axes_in_chains(ctx))  # those are NXT-007's
    for sample in ctx.samples:
        for axis in ctx.transformation_axes(sample):
            if ctx.attr(axis, "transformation_type") is None or axis.id in in_chains:
                continue
            if axis.size not in (1, n):
                yield Issue(axis.name, f"{axis.size} values for {n} frames")


@rule("NXMX-034", "beam-center-geometry", I)
def beam_center_geometry(ctx: FileContext) -> Iterator[Issue]:
    """distance and beam_center_x/_y agree with the geometry chain

    Every detector: where the beam meets each module against ``beam_center_x/_y``, and the
    sample-to-beam-centre distance along the beam against ``distance``. Rotations anywhere in
    the chains are applied; one detector's gaps never stop the others' checks.

    Spec: NXmx beam_center_x/_y, distance
    Hint: keep distance and beam centre equal to what the depends_on chains place
    """
    for detector in ctx.detectors:
        hits = [
            (module, _module_beam_centre(ctx, module))
            for module in ctx.children_of_class(detector, "NXdetector_module")
        ]
        yield from _distance_against_chain(ctx, detector, [h for _m, h in hits if h is not None])
        yield from _beam_centre_against_modules(ctx, detector, hits)


def _distance_against_chain(
    ctx: FileContext, detector: h5py.Group, hits: list[tuple[float, float, float]]
) -> Iterator[Issue]:
    distance = ctx.dataset("distance", detector)
    if distance is None:
        return
    value, (_, unit) = ctx.number(distance), ctx.units(distance)
    if value is None or unit is None:
        return
    stated_m = value * unit.to_si
    if hits:  # coplanar modules agree; for others take the module the value describes
        placed_m = min((h[2] for h in hits), key=lambda t: abs(t - stated_m))
        where = "where the beam meets the detector"
    else:
        start = chains.of_group(ctx, detector)
        placed = None
        if start is not None and start.value.strip() != ".":
            placed = chains.transform(ctx, chains.walk(ctx, start))
        if placed is None:
            return
        placed_m, where = float(placed.shift_m[2]), "of the detector chain's origin along the beam"
    if abs(stated_m - placed_m) > 1e-4:
        yield Issue(
            distance.name,
            f"distance {stated_m:.5f} m differs from the chain's {placed_m:.5f} m ({where})",
        )


def _beam_centre_against_modules(
    ctx: FileContext,
    detector: h5py.Group,
    hits: list[tuple[h5py.Group, tuple[float, float, float] | None]],
) -> Iterator[Issue]:
    """Where the beam (+z through the origin) meets each module, against beam_center_x/_y."""
    centre = [ctx.dataset(n, detector) for n in ("beam_center_x", "beam_center_y")]
    if any(c is None or ctx.attr_text(c, "units") not in ("pixel", "pixels") for c in centre):
        return
    x, y = (ctx.number(c) for c in centre)
    if x is None or y is None:
        return
    for module, found in hits:
        if found is None:
            continue
        if max(abs(found[0] - x), abs(found[1] - y)) > 1.0:
            yield Issue(
                module.name,
                f"the geometry puts the beam at ({found[0]:.2f}, {found[1]:.2f}) px, "
                f"beam_center_x/_y say ({x:.2f}, {y:.2f})",
            )


def _module_beam_centre(ctx: FileContext, module: h5py.Group) -> tuple[float, float, float] | None:
    """(x, y) in pixels where the beam meets the module's plane, and the distance (m) from
    the sample to that point along the beam; ``None`` when the geometry is incomplete."""
    fast, slow = (ctx.dataset(n, module) for n in ("fast_pixel_direction", "slow_pixel_direction"))
    origin = ctx.array(ctx.dataset("data_origin", module))
    if fast is None or slow is None or origin is None or origin.size < 2:
        return None
    steps = []
    for axis in (fast, slow):
        vector, pitch = chains.float_vector(ctx.attr(axis, "vector")), ctx.number(axis)
        _, unit = ctx.units(axis)
        if vector is None or vector.size != 3 or pitch is None or unit is None:
            return None
        if not np.linalg.norm(vector):
            return None
        steps.append(vector / np.linalg.norm(vector) * pitch * unit.to_si)
    placed = chains.transform(ctx, chains.walk(ctx, chains.of_axis(ctx, fast)))
    if placed is None:
        return None
    rotation = placed.rotation
    matrix = np.column_stack([rotation @ steps[0], rotation @ steps[1], [0, 0, -1.0]])
    if abs(np.linalg.det(matrix)) < 1e-12:
        return None
    f, s, t = np.linalg.solve(matrix, -placed.shift_m)
    return float(origin.reshape(-1)[-1] + f), float(origin.reshape(-1)[-2] + s), float(t)
