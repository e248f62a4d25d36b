"""NXmx application-definition rules (NXMX), from the NeXus NXmx definition; the detector's
are in :mod:`jfconform.rules.nxmx_detector`.

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
    ENTRY,
    FRAMES,
    INSTRUMENT,
    NXDATA,
    NXDL,
    SAMPLE,
    SOURCE,
    Field,
    FieldRule,
    parse_iso8601,
    register_rows,
)
from jfconform.model import E, I, Issue, W
from jfconform.registry import rule

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

        Spec: NXmx NXdata/data [nP,i,j(,k)]; Jungfraujoch docs/HDF5.md §2 (NXmxLegacy)
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
            positive=True,
        ),
        """incident_wavelength present, float, wavelength units, allowed shape, finite > 0

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
