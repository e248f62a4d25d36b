"""NXmx application-definition rules (NXMX), conformance.md §1 and §7.2."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule
from jfconform.rules._common import (
    DependsOn,
    all_depends_on,
    apply_chain,
    float_vector,
    parse_iso8601,
    units_of,
    walk_chain,
)
from jfconform.units import LENGTH

PROFILES = ("Gaussian", "Airy", "top-hat", "rectangular")


def _entry_path(ctx: FileContext) -> str:
    return ctx.entry.name if ctx.entry is not None else "/entry"


@rule(
    "NXMX-001",
    "definition-not-nxmx",
    E,
    spec="NXmx NXentry/definition",
    summary="An NXentry with scalar definition = 'NXmx' exists",
    hint="write /entry/definition = 'NXmx' (a scalar string)",
)
def definition_not_nxmx(ctx: FileContext) -> Iterator[Issue]:
    for entry in ctx.entries:
        if ctx.text(ctx.dataset("definition", entry)) == "NXmx":
            return
    found = ctx.text(ctx.dataset("definition", ctx.entry)) if ctx.entry is not None else None
    yield Issue(
        f"{_entry_path(ctx)}/definition",
        f"no NXentry declares definition 'NXmx' (found {found!r}); DIALS sees no entry",
    )


def _required_entry_field(ctx: FileContext, name: str) -> Iterator[Issue]:
    if ctx.entry is not None and ctx.missing(name, ctx.entry):
        yield Issue(f"{_entry_path(ctx)}/{name}", f"required field {name} is missing")


@rule(
    "NXMX-002",
    "start-time-missing",
    E,
    spec="NXmx NXentry/start_time",
    summary="start_time present",
    hint="write /entry/start_time (ISO 8601 with zone)",
)
def start_time_missing(ctx: FileContext) -> Iterator[Issue]:
    yield from _required_entry_field(ctx, "start_time")


@rule(
    "NXMX-003",
    "end-time-estimated-missing",
    E,
    spec="NXmx NXentry/end_time_estimated",
    summary="end_time_estimated present",
    hint="write /entry/end_time_estimated (required even when end_time is written)",
)
def end_time_estimated_missing(ctx: FileContext) -> Iterator[Issue]:
    yield from _required_entry_field(ctx, "end_time_estimated")


@rule(
    "NXMX-004",
    "times-and-version",
    I,
    spec="NXmx NXentry end_time, @version",
    summary="end_time >= start_time; @version (if present) is the text '1.0'",
    hint="write end_time after start_time and @version as the string '1.0'",
)
def times_and_version(ctx: FileContext) -> Iterator[Issue]:
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


@rule(
    "NXMX-005",
    "nxdata-missing",
    E,
    spec="NXmx NXentry/NXdata",
    summary="NXentry has an NXdata group",
    hint="add /entry/data with NX_class='NXdata'",
)
def nxdata_missing(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is not None and not ctx.in_entry("NXdata"):
        yield Issue(_entry_path(ctx), "the entry has no NXdata group")


@rule(
    "NXMX-006",
    "data-rank",
    W,
    spec="NXmx NXdata/data [nP,i,j(,k)]; Jungfraujoch HDF5.md legacy",
    summary="NXdata/data has rank 3 or 4 (legacy data_NNNNNN links stand in)",
    hint="store images as [frames, slow, fast] in /entry/data/data",
)
def data_rank(ctx: FileContext) -> Iterator[Issue]:
    group = ctx.data_group
    if group is None:
        return
    if ctx.image_dataset is None:
        return  # no image data at all is JF-003's finding; legacy links stand in for data
    if ctx.image_dataset.ndim not in (3, 4):
        yield Issue(
            ctx.image_dataset.name,
            f"data has rank {ctx.image_dataset.ndim}, expected 3 or 4 ([nP, i, j(, k)])",
        )


@rule(
    "NXMX-007",
    "data-scaling-shape",
    I,
    spec="NXmx NXdata data_scaling_factor/data_offset",
    summary="data_scaling_factor / data_offset shapes are allowed ones",
    hint="use a scalar, the frame shape, [nP, 1] or [nP] + frame shape",
)
def data_scaling_shape(ctx: FileContext) -> Iterator[Issue]:
    group, frame, n = ctx.data_group, ctx.frame_shape, ctx.n_frames
    if group is None:
        return
    for name in ("data_scaling_factor", "data_offset"):
        dataset = ctx.dataset(name, group)
        if dataset is None:
            continue
        allowed = {(), (1,)}
        if frame:
            allowed.add(tuple(frame))
            if n is not None:
                allowed |= {(n, 1), (n, *frame)}
        if dataset.shape not in allowed:
            yield Issue(dataset.name, f"{name} has shape {dataset.shape}, not an allowed one")
        if name == "data_scaling_factor":
            yield Issue(dataset.name, "DIALS nxmx reads 'data_scale_factor', not this name")


@rule(
    "NXMX-008",
    "sample-name-missing",
    E,
    spec="NXmx NXsample/name",
    summary="NXsample present with name",
    hint="add /entry/sample (NXsample) with a name",
)
def sample_name_missing(ctx: FileContext) -> Iterator[Issue]:
    samples = ctx.in_entry("NXsample")
    if ctx.entry is not None and not samples:
        yield Issue(_entry_path(ctx), "the entry has no NXsample group")
    for sample in samples:
        if ctx.missing("name", sample):
            yield Issue(f"{sample.name}/name", "required field sample name is missing")


@rule(
    "NXMX-009",
    "sample-depends-on-missing",
    E,
    spec="NXmx NXsample/depends_on",
    summary="NXsample depends_on present (a path, or '.' without goniometer)",
    hint="write sample/depends_on naming the innermost goniometer axis, or '.' for stills",
)
def sample_depends_on_missing(ctx: FileContext) -> Iterator[Issue]:
    for sample in ctx.in_entry("NXsample"):
        if ctx.missing("depends_on", sample):
            yield Issue(f"{sample.name}/depends_on", "required field depends_on is missing")


def _axis_values(ctx: FileContext, path: str) -> np.ndarray | None:
    dataset = ctx.dataset(path)
    if dataset is None or dataset.dtype.kind not in "iuf":
        return None
    value = ctx.value(dataset)
    return None if value is None else np.asarray(value, dtype=float).reshape(-1)


@rule(
    "NXMX-010",
    "scan-axis-not-in-chain",
    W,
    spec="NXmx NXsample/NXtransformations",
    summary="For scans the sample chain exists and contains a moving axis; '.' only for stills",
    hint="point sample/depends_on at the scanned axis (e.g. transformations/omega)",
)
def scan_axis_not_in_chain(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    for sample in ctx.in_entry("NXsample"):
        dep = ctx.dataset("depends_on", sample)
        text = ctx.text(dep)
        if text is None:
            continue
        transformations = ctx.children_of_class(sample, "NXtransformations")
        moving = []
        for group in transformations:
            for name in ctx.member_names(group):
                values = _axis_values(ctx, f"{group.name}/{name}")
                if values is not None and values.size > 1 and np.ptp(values) > 0:
                    moving.append(f"{group.name}/{name}")
        if text.strip() == ".":
            if moving:
                yield Issue(dep.name, f"depends_on is '.' but {moving[0]} moves during the scan")
            continue
        chain = walk_chain(ctx, DependsOn(dep.name, text, sample.name))
        if chain.end != "dot":
            continue  # a broken chain is NXT-001's / NXT-002's finding
        if n and n > 1 and moving and not set(moving) & set(chain.axes):
            yield Issue(dep.name, f"the sample chain does not contain the moving axis {moving[0]}")


@rule(
    "NXMX-011",
    "instrument-name-missing",
    E,
    spec="NXmx NXinstrument/name",
    summary="NXinstrument present with name",
    hint="add /entry/instrument (NXinstrument) with a name (the beamline)",
)
def instrument_name_missing(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is not None and not ctx.instruments:
        yield Issue(_entry_path(ctx), "the entry has no NXinstrument group")
    for instrument in ctx.instruments:
        if ctx.missing("name", instrument):
            yield Issue(f"{instrument.name}/name", "required field instrument name is missing")


@rule(
    "NXMX-012",
    "time-zone",
    W,
    spec="NXmx NXinstrument/time_zone",
    summary="time_zone present (W); a bare offset is noted (I)",
    hint="write instrument/time_zone, e.g. '+01:00' or 'Europe/Zurich'",
)
def time_zone(ctx: FileContext) -> Iterator[Issue]:
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


@rule(
    "NXMX-013",
    "attenuator-transmission-range",
    I,
    spec="NXmx NXattenuator",
    summary="attenuator_transmission in [0, 1]",
    hint="store transmission as a fraction 0..1",
)
def attenuator_transmission_range(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        for attenuator in ctx.children_of_class(instrument, "NXattenuator"):
            value = ctx.number(ctx.dataset("attenuator_transmission", attenuator))
            if value is not None and not 0.0 <= value <= 1.0:
                yield Issue(
                    f"{attenuator.name}/attenuator_transmission",
                    f"transmission {value} is outside [0, 1]",
                )


@rule(
    "NXMX-027",
    "beam-missing",
    E,
    spec="NXmx NXinstrument/NXbeam",
    summary="NXbeam present inside NXinstrument",
    hint="move/add the beam group to /entry/instrument/beam (NX_class='NXbeam')",
)
def beam_missing(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        if not ctx.children_of_class(instrument, "NXbeam"):
            yield Issue(instrument.name, "the instrument has no NXbeam group")


@rule(
    "NXMX-028",
    "incident-wavelength",
    E,
    spec="NXmx NXbeam/incident_wavelength",
    summary="incident_wavelength present, float, wavelength units, allowed shape",
    hint="write beam/incident_wavelength as a float with units='angstrom'",
)
def incident_wavelength(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            dataset = ctx.dataset("incident_wavelength", beam)
            if ctx.missing("incident_wavelength", beam):
                yield Issue(f"{beam.name}/incident_wavelength", "required field is missing")
                continue
            if dataset is None:
                continue  # unreadable: H5-013
            if dataset.dtype.kind != "f":
                yield Issue(dataset.name, f"incident_wavelength is not float ({dataset.dtype})")
            text, unit = units_of(ctx, dataset)
            if text is None:
                yield Issue(dataset.name, "incident_wavelength has no units")
            elif unit is not None and unit.dimension != LENGTH:
                yield Issue(dataset.name, f"units {text!r} are not a wavelength")
            if dataset.ndim > 2 or (dataset.ndim == 2 and n and dataset.shape[0] != n):
                yield Issue(dataset.name, f"shape {dataset.shape} is not scalar/[m]/[nP]/[nP,m]")


@rule(
    "NXMX-029",
    "beam-optional-shape",
    W,
    spec="NXmx NXbeam",
    summary="incident_beam_size [2]; profile enumeration; incident_polarization_stokes [nP,4]",
    hint="profile is one of Gaussian, Airy, top-hat, rectangular; beam size is [2]",
)
def beam_optional_shape(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            size = ctx.dataset("incident_beam_size", beam)
            if size is not None and size.shape != (2,):
                yield Issue(size.name, f"incident_beam_size shape {size.shape}, expected (2,)")
            profile = ctx.dataset("profile", beam)
            if profile is not None and ctx.text(profile) not in PROFILES:
                yield Issue(
                    profile.name,
                    f"profile {ctx.text(profile)!r} is not one of {', '.join(PROFILES)}",
                )
            stokes = ctx.dataset("incident_polarization_stokes", beam)
            if stokes is not None and (stokes.ndim != 2 or stokes.shape[-1] != 4):
                yield Issue(stokes.name, f"shape {stokes.shape}, expected [nP, 4]")


@rule(
    "NXMX-030",
    "flux-attribute",
    I,
    spec="NXmx NXbeam @flux",
    summary="@flux names one of the flux fields",
    hint="set beam/@flux to flux, total_flux, flux_integrated or total_flux_integrated",
)
def flux_attribute(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            flux = ctx.attr_text(beam, "flux")
            if flux is not None and flux not in ctx.member_names(beam):
                yield Issue(beam.name, f"@flux = {flux!r} names no member of the beam")


@rule(
    "NXMX-031",
    "beam-deprecated-fields",
    W,
    spec="NXmx NXbeam deprecated spellings",
    summary="Deprecated incident_wavelength_weight / incident_polarisation_stokes not used",
    hint="use incident_wavelength_weights / incident_polarization_stokes",
)
def beam_deprecated_fields(ctx: FileContext) -> Iterator[Issue]:
    for instrument in ctx.instruments:
        for beam in ctx.children_of_class(instrument, "NXbeam"):
            for name in ("incident_wavelength_weight", "incident_polarisation_stokes"):
                if name in ctx.member_names(beam):
                    yield Issue(f"{beam.name}/{name}", f"deprecated field {name} is present")


@rule(
    "NXMX-032",
    "source-missing",
    E,
    spec="NXmx NXentry/NXsource",
    summary="NXsource directly in NXentry with name",
    hint="add /entry/source (NX_class='NXsource') with a name",
)
def source_missing(ctx: FileContext) -> Iterator[Issue]:
    if ctx.entry is None:
        return
    sources = ctx.in_entry("NXsource")
    if not sources:
        yield Issue(_entry_path(ctx), "the entry has no NXsource group")
    for source in sources:
        if ctx.missing("name", source):
            yield Issue(f"{source.name}/name", "required field source name is missing")


@rule(
    "NXMX-033",
    "frame-count-consistent",
    W,
    spec="NXmx nP",
    summary="Frames of data = length of scanned axes = per-frame arrays",
    hint="write one axis value per frame (or one value for a fixed axis)",
)
def frame_count_consistent(ctx: FileContext) -> Iterator[Issue]:
    n = ctx.n_frames
    if not n:
        return
    in_chains = {
        axis.id
        for start in all_depends_on(ctx)
        for path in walk_chain(ctx, start).axes
        if (axis := ctx.dataset(path)) is not None
    }
    for sample in ctx.in_entry("NXsample"):
        for group in ctx.children_of_class(sample, "NXtransformations"):
            for name in ctx.member_names(group):
                dataset = ctx.dataset(name, group)
                if dataset is None or ctx.attr(dataset, "transformation_type") is None:
                    continue
                if dataset.id in in_chains:
                    continue  # axes in a depends_on chain are NXT-007's
                if dataset.size not in (1, n):
                    yield Issue(dataset.name, f"{dataset.size} values for {n} frames")


@rule(
    "NXMX-034",
    "beam-center-geometry",
    I,
    spec="NXmx beam_center_x/_y, distance",
    summary="distance and beam_center_x/_y agree with the geometry chain",
    hint="keep distance and beam centre equal to what the depends_on chains place",
)
def beam_center_geometry(ctx: FileContext) -> Iterator[Issue]:
    """Every detector: where the beam meets each module against ``beam_center_x/_y``, and the
    sample-to-beam-centre distance along the beam against ``distance``. Rotations anywhere in
    the chains are applied; one detector's gaps never stop the others' checks."""
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
    value = ctx.number(distance)
    _, unit = (None, None) if distance is None else units_of(ctx, distance)
    if value is None or unit is None:
        return
    stated_m = value * unit.to_si
    if hits:  # coplanar modules agree; for others take the module the value describes
        placed_m = min((h[2] for h in hits), key=lambda t: abs(t - stated_m))
        where = "where the beam meets the detector"
    else:
        placed_m = _chain_origin_z(ctx, detector)
        where = "of the detector chain's origin along the beam"
        if placed_m is None:
            return
    if abs(stated_m - placed_m) > 1e-4:
        yield Issue(
            distance.name,
            f"distance {stated_m:.5f} m differs from the chain's {placed_m:.5f} m ({where})",
        )


def _chain_origin_z(ctx: FileContext, detector: h5py.Group) -> float | None:
    dep = ctx.text(ctx.dataset("depends_on", detector))
    if dep is None or dep.strip() == ".":
        return None
    chain = walk_chain(ctx, DependsOn(f"{detector.name}/depends_on", dep, detector.name))
    placed = apply_chain(ctx, chain.axes, np.zeros(3)) if chain.end == "dot" else None
    return None if placed is None else float(placed[0][2])


def _beam_centre_against_modules(
    ctx: FileContext,
    detector: h5py.Group,
    hits: list[tuple[h5py.Group, tuple[float, float, float] | None]],
) -> Iterator[Issue]:
    """Where the beam (+z through the origin) meets each module, against beam_center_x/_y."""
    centre = [ctx.dataset(n, detector) for n in ("beam_center_x", "beam_center_y")]
    if any(c is None or ctx.attr_text(c, "units") not in ("pixel", "pixels") for c in centre):
        return
    stated = [ctx.number(c) for c in centre]
    if None in stated:
        return
    for module, found in hits:
        if found is None:
            continue
        if max(abs(found[0] - stated[0]), abs(found[1] - stated[1])) > 1.0:
            yield Issue(
                module.name,
                f"the geometry puts the beam at ({found[0]:.2f}, {found[1]:.2f}) px, "
                f"beam_center_x/_y say ({stated[0]:.2f}, {stated[1]:.2f})",
            )


def _module_beam_centre(ctx: FileContext, module: h5py.Group) -> tuple[float, float, float] | None:
    """(x, y) in pixels where the beam meets the module's plane, and the distance (m) from
    the sample to that point along the beam; ``None`` when the geometry is incomplete."""
    fast, slow = (ctx.dataset(n, module) for n in ("fast_pixel_direction", "slow_pixel_direction"))
    origin = ctx.array(ctx.dataset("data_origin", module))
    if fast is None or slow is None or origin is None or origin.size < 2:
        return None
    directions = []
    for axis in (fast, slow):
        vector, pitch = float_vector(ctx.attr(axis, "vector")), ctx.number(axis)
        _, unit = units_of(ctx, axis)
        if vector is None or vector.size != 3 or pitch is None or unit is None:
            return None
        if not np.linalg.norm(vector):
            return None
        directions.append(vector / np.linalg.norm(vector) * pitch * unit.to_si)
    start = DependsOn(fast.name, ctx.attr_text(fast, "depends_on") or ".", module.name)
    chain = walk_chain(ctx, start)
    placed = apply_chain(ctx, chain.axes, np.zeros(3)) if chain.end == "dot" else None
    if placed is None:
        return None
    corner, rotation = placed
    matrix = np.column_stack([rotation @ directions[0], rotation @ directions[1], [0, 0, -1.0]])
    if abs(np.linalg.det(matrix)) < 1e-12:
        return None
    f, s, t = np.linalg.solve(matrix, -corner)
    return float(origin.reshape(-1)[-1] + f), float(origin.reshape(-1)[-2] + s), float(t)
