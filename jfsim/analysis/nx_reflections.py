"""The reflection groups of ``_process.h5``: integrated reflections per image and the
scaling and merging step.

* ``/entry/reflections/image_NNNNNN`` (NXcollection of NXreflections, seed 001 §4.2): the
  reflections integrated on image NNNNNN − 1 of the run (names count from 1, as data files
  do; ``observed_frame`` is the 0-based image number). Columns and units:
  ``h, k, l``; ``d`` (Å); ``int_sum``, ``int_err``, ``background_mean`` (photons);
  ``predicted_x/_y``, ``observed_x/_y`` (**pixels**, index coordinates: first pixel's
  centre at 0 — Jungfraujoch's documented departure from NXreflections, whose
  ``predicted_x`` is a length; NXR-005 says so); ``observed_frame``; ``lp`` = L·P;
  ``partiality``; ``delta_phi`` (deg) and ``zeta`` (NaN for stills) and
  ``image_scale_corr`` (extensions).
* ``/entry/jfsim_scale_merge`` (NXprocess, ``sequence_index`` 2, seed 002 "v2"):
  ``program``, ``version``, ``date``, ``configuration`` (NXnote, the scaling settings as
  JSON) and ``results``: ``space_group``, ``space_group_number``, ``unit_cell_abc`` [3] (Å) and
  ``unit_cell_alphabetagamma`` [3] (deg),
  ``anomalous``, ``partiality_model``, ``merged_file``, observation counts, rejections,
  ``shells/*`` (one value per resolution shell) and ``overall/*`` (the statistics of
  :mod:`jfsim.analysis.merge_statistics`), and ``merged/`` (``h, k, l, d, intensity,
  sigma, multiplicity``; with ``-A`` also ``intensity_plus/_minus`` and their σ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from jfsim.analysis.merging import MergeResult
from jfsim.analysis.nx_process import nx_process, write_text
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.writer.h5tree import H5Tree

__all__ = [
    "MERGE_GROUP",
    "REFLECTION_UNITS",
    "write_merge_process",
    "write_reflections",
]

#: The NXprocess group of the scaling and merging step (``-M``).
MERGE_GROUP = "/entry/jfsim_scale_merge"
#: ``program`` of that group.
PROGRAM = "jfsim process: scaling and merging"


# -- integrated reflections (seed 001 §4.2) ----------------------------------------------------
#: (dataset, units) of the per-image NXreflections columns, in seed 001's order.
REFLECTION_UNITS: dict[str, str | None] = {
    "h": None,
    "k": None,
    "l": None,
    "d": "angstrom",
    "int_sum": "photons",
    "int_err": "photons",
    "background_mean": "photons",
    "predicted_x": "pixel",
    "predicted_y": "pixel",
    "observed_x": "pixel",
    "observed_y": "pixel",
    "observed_frame": None,
    "lp": None,
    "partiality": None,
    "delta_phi": "deg",
    "zeta": None,
    "image_scale_corr": None,
}


#: The NXcollection of the per-image groups, below ``/entry``.
REFLECTIONS_GROUP = "reflections"


def write_reflections(
    entry: h5py.Group,
    reflections: Sequence[IntegratedReflections],
    merge: MergeResult | None,
) -> None:
    """``/entry/reflections/image_NNNNNN`` per image with reflections (see
    :func:`_declare_image_group`), with the scales and partiality model of ``merge``.

    ``reflections`` are tables as integration returns them, one per image (a table that
    holds several images is split): each group is written from its own table, without
    gathering a run's millions of rows into one table and picking them out again. The
    groups are described first and created in one pass by HDF5's C functions
    (:class:`jfsim.writer.h5tree.H5Tree`, h5py's low-level calls where those cannot be
    called): a run of 1000 stills writes ~10 000 columns with their ``units``, and h5py's
    wrappers cost more than HDF5's own work. Contiguous datasets without time stamps,
    ``units`` a scalar variable-length UTF-8 string, as h5py's ``create_dataset`` and
    ``attrs`` write them."""
    scales: dict[int, float] = {}
    if merge is not None:
        scales = dict(zip(merge.image_numbers.tolist(), merge.image_scales.tolist(), strict=True))
    unity = merge is not None and merge.partiality_model == "unity"
    per_image = [one for table in reflections for one in table.by_image()]
    if not per_image:
        return
    tree = H5Tree()
    tree.require_group(REFLECTIONS_GROUP, "NXcollection")
    for table in sorted(per_image, key=lambda one: int(one.image[0])):
        _declare_image_group(
            tree, table, scale=scales.get(int(table.image[0]), 1.0), unity_partiality=unity
        )
    tree.write(entry)


def _declare_image_group(
    tree: H5Tree,
    table: IntegratedReflections,
    *,
    scale: float = 1.0,
    unity_partiality: bool = False,
) -> None:
    """``reflections/image_NNNNNN``: the reflections of one image (all rows of ``table``
    are image NNNNNN − 1 of the run: 1-based group names, as data files count from 1),
    positions in index coordinates (pixel), ``lp`` = L·P, ``image_scale_corr`` =
    1/(g · partiality · lp): the full intensity this row alone estimates is
    ``image_scale_corr · int_sum`` (g = ``scale``: 1 without ``-M``; partiality 1 with
    ``-P unity``)."""
    image = int(table.image[0])
    scales = np.full(len(table), scale)
    partiality = np.ones(len(table)) if unity_partiality else table.partiality
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = 1.0 / (scales * partiality * table.lp)
    columns: dict[str, npt.NDArray[Any]] = {
        "h": table.h.astype(np.int32),
        "k": table.k.astype(np.int32),
        "l": table.l.astype(np.int32),
        "d": table.d_A.astype(np.float32),
        "int_sum": table.intensity_photons.astype(np.float32),
        "int_err": table.sigma_photons.astype(np.float32),
        "background_mean": table.background_photons.astype(np.float32),
        "predicted_x": table.predicted_x_pxl.astype(np.float32),
        "predicted_y": table.predicted_y_pxl.astype(np.float32),
        "observed_x": table.observed_x_pxl.astype(np.float32),
        "observed_y": table.observed_y_pxl.astype(np.float32),
        "observed_frame": np.full(len(table), image, dtype=np.float32),
        "lp": table.lp.astype(np.float32),
        "partiality": table.partiality.astype(np.float32),
        "delta_phi": table.delta_phi_deg.astype(np.float32),
        "zeta": table.zeta.astype(np.float32),
        "image_scale_corr": correction.astype(np.float32),
    }
    group = tree.group(f"{REFLECTIONS_GROUP}/image_{image + 1:06d}", "NXreflections")
    for name, values in columns.items():
        tree.dataset(f"{group}/{name}", values, REFLECTION_UNITS[name])


# -- scaling and merging -------------------------------------------------------------------
def write_merge_process(
    entry: h5py.Group,
    merge: MergeResult,
    *,
    configuration: str,
    configuration_of: str,
    merged_file: Path | None,
) -> None:
    """The NXprocess group of the scaling and merging step (see the module docstring);
    ``configuration`` is its settings JSON, part of the document at ``configuration_of``."""
    process = nx_process(
        entry,
        MERGE_GROUP.rpartition("/")[2],
        program=PROGRAM,
        sequence_index=2,
        description="the scaling section and space group of the settings "
        f"(all of them: {configuration_of})",
        configuration=configuration,
    )
    results = process.create_group("results")
    results.attrs["NX_class"] = "NXcollection"
    write_text(results, "space_group", merge.space_group)
    results.create_dataset("space_group_number", data=np.int64(merge.space_group_number))
    for cell_name, cell_values, cell_units in (
        ("unit_cell_abc", merge.cell[:3], "angstrom"),
        ("unit_cell_alphabetagamma", merge.cell[3:], "deg"),
    ):
        cell = results.create_dataset(cell_name, data=np.asarray(cell_values, dtype=np.float64))
        cell.attrs["units"] = cell_units
    results.create_dataset("anomalous", data=np.uint8(merge.anomalous))
    write_text(results, "partiality_model", merge.partiality_model)
    if merged_file is not None:
        write_text(results, "merged_file", merged_file.name)
    results.create_dataset("observations_integrated", data=np.int64(merge.observations_integrated))
    results.create_dataset("observations_merged", data=np.int64(merge.observations_merged))
    results.create_dataset(
        "rejected_reasons",
        data=np.array(list(merge.rejected), dtype=h5py.string_dtype()),
    )
    results.create_dataset(
        "rejected_counts", data=np.array(list(merge.rejected.values()), dtype=np.int64)
    )
    shells = results.create_group("shells")
    shells.attrs["NX_class"] = "NXcollection"
    overall = results.create_group("overall")
    overall.attrs["NX_class"] = "NXcollection"
    rows = [asdict(shell) for shell in merge.statistics.shells]
    for name, value in asdict(merge.statistics.overall).items():
        units = "angstrom" if name.startswith("d_") else None
        column = np.array([row[name] for row in rows])
        for group, data in ((shells, column), (overall, value)):
            dataset = group.create_dataset(name, data=data)
            if units:
                dataset.attrs["units"] = units
    merged = merge.merged
    table = results.create_group("merged")
    table.attrs["NX_class"] = "NXcollection"
    columns: dict[str, tuple[npt.NDArray[Any], str | None]] = {
        "h": (merged.h, None),
        "k": (merged.k, None),
        "l": (merged.l, None),
        "d": (merged.d_A.astype(np.float32), "angstrom"),
        "intensity": (merged.intensity.astype(np.float32), "photons"),
        "sigma": (merged.sigma.astype(np.float32), "photons"),
        "multiplicity": (merged.multiplicity.astype(np.int32), None),
    }
    if merge.anomalous:
        columns.update(
            {
                "intensity_plus": (merged.intensity_plus.astype(np.float32), "photons"),
                "sigma_plus": (merged.sigma_plus.astype(np.float32), "photons"),
                "intensity_minus": (merged.intensity_minus.astype(np.float32), "photons"),
                "sigma_minus": (merged.sigma_minus.astype(np.float32), "photons"),
            }
        )
    for name, (values, units) in columns.items():
        dataset = table.create_dataset(name, data=values)
        if units:
            dataset.attrs["units"] = units
