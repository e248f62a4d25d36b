"""The merged reflection file: ``PREFIX.mtz`` (default), ``PREFIX.cif`` or ``PREFIX.hkl``.

As ``jfjoch_process -M`` writes them (seed 003, ``--scaling-output mtz|cif|txt``):

* **mtz** through ``gemmi.Mtz``: columns H K L (type H), IMEAN (J), SIGIMEAN (Q), N (I,
  the observations merged); with ``-A`` also I(+) SIGI(+) I(−) SIGI(−) (K, M). The cell,
  space group and wavelength are the merge's; one dataset ``jfsim``.
* **cif**: the same MTZ converted by gemmi's ``MtzToCif`` (mmCIF ``_refln`` loop).
* **txt**: a header of ``#`` lines (cell, space group, columns), then one line per
  reflection ``h k l I sigma(I) n`` (anomalous: ``h k l I(+) sigma I(-) sigma``).

Written as ``<name>.<pid>.tmp`` and renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np

from jfsim import __version__
from jfsim.analysis.errors import AnalysisInputError
from jfsim.analysis.merging import MergeResult

__all__ = ["SUFFIXES", "merged_file_path", "write_merged_file"]

#: File name suffix of each ``--scaling-output`` format.
SUFFIXES = {"mtz": ".mtz", "cif": ".cif", "txt": ".hkl"}


def merged_file_path(prefix: str | Path, output_format: str) -> Path:
    """``PREFIX.mtz``, ``PREFIX.cif`` or ``PREFIX.hkl``."""
    return Path(f"{prefix}{SUFFIXES[output_format]}")


def write_merged_file(
    path: Path, result: MergeResult, output_format: str, *, wavelength_A: float
) -> Path:
    """Write ``result`` in ``output_format`` to ``path`` (atomically); returns ``path``."""
    mtz = _mtz(result, wavelength_A)
    if output_format == "mtz":
        content: bytes = mtz.write_to_bytes()
    elif output_format == "cif":
        converter = gemmi.MtzToCif()
        content = converter.write_cif_to_string(mtz).encode("utf-8")
    elif output_format == "txt":
        content = _text(result).encode("utf-8")
    else:
        raise AnalysisInputError(
            f"--scaling-output {output_format!r}: use one of {', '.join(SUFFIXES)}"
        )
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise AnalysisInputError(f"{path}: cannot write ({error})") from error
    return path


def _mtz(result: MergeResult, wavelength_A: float) -> gemmi.Mtz:
    merged = result.merged
    mtz = gemmi.Mtz(with_base=True)
    mtz.title = f"jfsim process {__version__}: scaled and merged"
    mtz.spacegroup = gemmi.find_spacegroup_by_number(result.space_group_number)
    mtz.set_cell_for_all(gemmi.UnitCell(*result.cell))
    dataset = mtz.add_dataset("jfsim")
    dataset.project_name = "jfsim"
    dataset.crystal_name = "crystal"
    dataset.wavelength = wavelength_A
    columns: list[np.ndarray] = [merged.h, merged.k, merged.l]
    mtz.add_column("IMEAN", "J")
    mtz.add_column("SIGIMEAN", "Q")
    mtz.add_column("N", "I")
    columns += [merged.intensity, merged.sigma, merged.multiplicity]
    if result.anomalous:
        for label, kind, values in (
            ("I(+)", "K", merged.intensity_plus),
            ("SIGI(+)", "M", merged.sigma_plus),
            ("I(-)", "K", merged.intensity_minus),
            ("SIGI(-)", "M", merged.sigma_minus),
        ):
            mtz.add_column(label, kind)
            columns.append(values)
    data = np.stack([np.asarray(c, dtype=np.float32) for c in columns], axis=1)
    mtz.set_data(np.ascontiguousarray(data))
    mtz.history = [
        f"jfsim process {__version__}: partiality model {result.partiality_model}, "
        f"{result.observations_merged} observations merged"
    ]
    mtz.update_reso()
    return mtz


def _text(result: MergeResult) -> str:
    merged = result.merged
    cell = " ".join(f"{value:g}" for value in result.cell)
    lines = [
        f"# jfsim process {__version__}: scaled and merged intensities",
        f"# cell {cell}",
        f"# space group {result.space_group} ({result.space_group_number})",
    ]
    if result.anomalous:
        lines.append("# h k l I(+) sigI(+) I(-) sigI(-)   (nan: not measured)")
        rows = zip(
            merged.h,
            merged.k,
            merged.l,
            merged.intensity_plus,
            merged.sigma_plus,
            merged.intensity_minus,
            merged.sigma_minus,
            strict=True,
        )
        lines += [
            f"{h:4d} {k:4d} {ell:4d} {ip:12.3f} {sp:10.3f} {im:12.3f} {sm:10.3f}"
            for h, k, ell, ip, sp, im, sm in rows
        ]
    else:
        lines.append("# h k l I sigI n")
        rows3 = zip(
            merged.h,
            merged.k,
            merged.l,
            merged.intensity,
            merged.sigma,
            merged.multiplicity,
            strict=True,
        )
        lines += [
            f"{h:4d} {k:4d} {ell:4d} {i:12.3f} {s:10.3f} {n:4d}" for h, k, ell, i, s, n in rows3
        ]
    return "\n".join(lines) + "\n"
