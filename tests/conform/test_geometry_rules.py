"""Geometry rules that read whole chains: NXMX-034 (beam centre and distance) and JF-026
(Jungfraujoch's detector chain)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from fixtures.clean import DETECTOR, DETECTOR_AXES, RunSpec, write_run
from jfconform.engine import CheckOptions, check_file
from jfconform.model import Severity


def _findings(path: Path, rule_id: str) -> list[str]:
    report = check_file(path, CheckOptions(select=(rule_id,)))
    return [f"{f.path}: {f.message}" for f in report.findings if f.severity >= Severity.INFO]


def _two_theta_arm(master: Path, angle_deg: float, *, consistent: bool) -> None:
    """Swing the detector about the sample on a two-theta arm outside the translation:
    depends_on → translation → two_theta → '.'. With ``consistent`` the file states the
    distance and beam centre where the beam now meets the tilted detector."""
    spec = RunSpec()
    angle = math.radians(angle_deg)
    with h5py.File(master, "r+") as h5:
        axes = h5[DETECTOR_AXES]
        arm = axes.create_dataset("two_theta", data=[angle_deg])
        arm.attrs.update(
            {"transformation_type": "rotation", "vector": [-1.0, 0.0, 0.0], "units": "deg"}
        )
        arm.attrs["depends_on"] = "."
        axes["translation"].attrs["depends_on"] = f"{DETECTOR_AXES}/two_theta"
        del h5[f"{DETECTOR}/depends_on"]
        h5[DETECTOR]["depends_on"] = f"{DETECTOR_AXES}/translation"
        h5[f"{DETECTOR}/module/module_offset"].attrs["depends_on"] = f"{DETECTOR_AXES}/translation"
        if consistent:
            # about -x by θ: the beam meets the plane through R·(0, 0, D) with normal R·ẑ at
            # t = D / cos θ, where the panel's local point is t·Rᵀẑ = t·(0, -sin θ, cos θ):
            # D·tan θ further along the slow axis (0, -1, 0)
            distance_m = spec.distance_m / math.cos(angle)
            h5[f"{DETECTOR}/distance"][()] = distance_m
            h5[f"{DETECTOR}/detector_distance"][()] = distance_m
            shift_pxl = spec.distance_m * math.tan(angle) / spec.pixel_size_m
            h5[f"{DETECTOR}/beam_center_y"][()] = spec.beam_center_pxl[1] + shift_pxl


def test_nxmx_034_applies_rotations_outside_the_translation(tmp_path: Path) -> None:
    """A two-theta arm swings the translation: the distance along the beam is D / cos θ.
    Summing the translations' z parts (ignoring the rotation) would cry wolf here."""
    master = write_run(tmp_path, RunSpec())
    _two_theta_arm(master, 20.0, consistent=True)
    assert _findings(master, "NXMX-034") == []


def test_nxmx_034_flags_a_tilt_the_stated_values_ignore(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())
    _two_theta_arm(master, 20.0, consistent=False)
    found = _findings(master, "NXMX-034")
    assert any("distance" in line for line in found), found
    assert any("puts the beam at" in line for line in found), found


def test_nxmx_034_checks_the_modules_when_the_distance_cannot_be_placed(tmp_path: Path) -> None:
    """A per-frame detector translation (legal: one value per frame) must not silence the
    beam-centre check of the modules."""
    spec = RunSpec()
    master = write_run(tmp_path, spec)
    with h5py.File(master, "r+") as h5:
        attrs = dict(h5[f"{DETECTOR_AXES}/translation"].attrs)
        del h5[f"{DETECTOR_AXES}/translation"]
        moving = h5[DETECTOR_AXES].create_dataset(
            "translation", data=np.full(spec.n_images, spec.distance_m)
        )
        moving.attrs.update(attrs)
        h5[f"{DETECTOR}/beam_center_x"][()] = spec.beam_center_pxl[0] + 5.0
    found = _findings(master, "NXMX-034")
    assert any("puts the beam at" in line for line in found), found


def test_nxmx_034_is_quiet_on_the_clean_seed_chain(clean_runs: dict[str, Path]) -> None:
    for master in clean_runs.values():
        assert _findings(master, "NXMX-034") == []


def test_jf_026_accepts_the_seed_chain_and_names_a_reversed_one(
    clean_runs: dict[str, Path], tmp_path: Path
) -> None:
    assert _findings(clean_runs["vds"], "JF-026") == []
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r+") as h5:
        for name, outer in (("translation", "rot1"), ("rot1", "rot2"), ("rot2", "rot3")):
            h5[f"{DETECTOR_AXES}/{name}"].attrs["depends_on"] = outer
        h5[f"{DETECTOR_AXES}/rot3"].attrs["depends_on"] = "."
        del h5[f"{DETECTOR}/depends_on"]
        h5[DETECTOR]["depends_on"] = f"{DETECTOR_AXES}/translation"
    (found,) = _findings(master, "JF-026")
    assert "translation (translation) → rot1 (rotation)" in found
