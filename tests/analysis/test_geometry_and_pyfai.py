"""Geometry from the NXmx file (through nxmx) and azimuthal integration against pyFAI."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.plan import analysis_plan
from jfsim.analysis.settings import ProcessSettings
from jfsim.detectors import grid_detector
from jfsim.experiment import (
    Background,
    Beam,
    Crystal,
    Dataset,
    DetectorPosition,
    Experiment,
    StillsScan,
    UnitCell,
)
from jfsim.geometry import panel_from_position
from jfsim.sim.background import WATER_RING_D_A, WATER_RING_SIGMA_Q_INVA
from tests.analysis.oracle import pyfai_integrator
from tests.analysis.runs import write_run

#: One 300 × 260 module, 0.3 mm pixels at 40 mm: 2θ up to ~60°, q up to ~5 Å⁻¹.
MID_DETECTOR = grid_detector(
    name="MID",
    description="one mid-size test module",
    family="EIGER2",
    n_modules=1,
    modules_per_row=1,
    module_fast_pxl=300,
    module_slow_pxl=260,
    gap_fast_pxl=0,
    gap_slow_pxl=0,
    image_dtype="int32",
    pixel_size_mm=0.3,
)
BEAM_XY = (110.5, 120.25)
POLARIZATION = 0.95
TILTS = {"normal": (0.0, 0.0), "tilted": (0.1, 0.15)}


def _powder_experiment(rot1: float, rot2: float) -> Experiment:
    """No crystal in the beam: water ring, air scatter and a constant, with Poisson noise."""
    return Experiment(
        detector=MID_DETECTOR,
        beam=Beam(energy_keV=12.4, polarization_factor=POLARIZATION),
        position=DetectorPosition(
            distance_mm=40.0,
            beam_x_pxl=BEAM_XY[0],
            beam_y_pxl=BEAM_XY[1],
            poni_rot1_rad=rot1,
            poni_rot2_rad=rot2,
        ),
        crystal=Crystal(unit_cell=UnitCell(40, 45, 50, 90, 90, 90), space_group_number=19),
        scan=StillsScan(hit_rate=0.0),
        background=Background(
            constant_photons=2.0, water_ring_photons=200.0, air_scatter_photons=50.0
        ),
        dataset=Dataset(number_of_images=1, file_prefix="mid/run", file_format="vds"),
        seed=3,
    )


@pytest.fixture(scope="module", params=sorted(TILTS))
def powder_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    rot1, rot2 = TILTS[request.param]
    master = write_run(_powder_experiment(rot1, rot2), tmp_path_factory.mktemp("powder"))
    return master, rot1, rot2


def _profile(master: Path, settings: ProcessSettings):  # type: ignore[no-untyped-def]
    run = open_run(master)
    plan = analysis_plan(run, settings)
    frame = FrameReader(run).read(0).pixels
    return run, plan, frame, ImageAnalyser(plan, device="cpu").analyse(0, frame)


def test_geometry_read_through_nxmx_is_the_simulated_panel(powder_run) -> None:
    master, rot1, rot2 = powder_run
    run = open_run(master)
    expected = panel_from_position(
        distance_mm=40.0,
        beam_x_pxl=BEAM_XY[0],
        beam_y_pxl=BEAM_XY[1],
        pixel_size_mm=0.3,
        width_pxl=300,
        height_pxl=260,
        poni_rot1_rad=rot1,
        poni_rot2_rad=rot2,
    )
    (module,) = run.geometry.modules
    points = (np.array([0.5, 299.5, 17.25]), np.array([0.5, 259.5, 130.0]))
    np.testing.assert_allclose(
        module.panel.pixel_to_lab_mm(*points), expected.pixel_to_lab_mm(*points), atol=1e-9
    )
    assert run.geometry.wavelength_A == pytest.approx(12.398419843320026 / 12.4)
    assert run.geometry.polarization_factor == pytest.approx(POLARIZATION)


def test_azimuthal_integration_agrees_with_pyfai_csr(powder_run) -> None:
    """Same geometry (pyFAI's PONI from jfsim.geometry), same corrections, no splitting:
    every bin with at least 100 pixels within 0.5 % (they agree to float32 rounding)."""
    pytest.importorskip("pyFAI")
    master, rot1, rot2 = powder_run
    low, spacing = 0.3, 0.02
    settings = ProcessSettings.from_mapping(
        {"azim_int": {"low_q_recipA": low, "q_spacing": spacing, "high_q_recipA": 3.0}}
    )
    run, plan, frame, result = _profile(master, settings)
    panel = run.geometry.modules[0].panel
    simulated = panel_from_position(
        distance_mm=40.0,
        beam_x_pxl=BEAM_XY[0],
        beam_y_pxl=BEAM_XY[1],
        pixel_size_mm=panel.pixel_size_mm,
        width_pxl=300,
        height_pxl=260,
        poni_rot1_rad=rot1,
        poni_rot2_rad=rot2,
    )
    integrator = pyfai_integrator(simulated, run.geometry.wavelength_A)
    mask = ~run.valid_pixels | (frame == run.error_value) | (frame >= run.saturation_value)
    n_q = plan.azimuthal.n_q
    reference = integrator.integrate1d(
        frame.astype(np.float64),
        n_q,
        unit="q_A^-1",
        radial_range=(low, low + n_q * spacing),
        correctSolidAngle=True,
        polarization_factor=POLARIZATION,
        mask=mask,
        method=("no", "csr", "cython"),
    )
    count = result.azimuthal.count[0]
    full = count >= 100
    assert full.sum() > 50
    np.testing.assert_allclose(reference.radial, plan.azimuthal.bin_to_q_recipA[0], rtol=1e-6)
    np.testing.assert_allclose(result.azimuthal.mean[0][full], reference.intensity[full], rtol=5e-3)
    assert np.max(np.abs(result.azimuthal.mean[0][full] / reference.intensity[full] - 1)) < 1e-5


def test_the_water_ring_lands_where_the_experiment_put_it(powder_run) -> None:
    """After solid-angle and polarisation corrections the ring is the simulator's Gaussian
    in q: centre 2π/3.7 Å⁻¹ and width 0.2 Å⁻¹."""
    from scipy.optimize import curve_fit

    master, _rot1, _rot2 = powder_run
    settings = ProcessSettings.from_mapping({"azim_int": {"low_q_recipA": 0.3, "q_spacing": 0.02}})
    _run, plan, _frame, result = _profile(master, settings)
    q = plan.azimuthal.bin_to_q_recipA[0]
    profile = result.azimuthal.mean[0]
    band = (q > 1.0) & (q < 2.4) & np.isfinite(profile)

    def ring(x, amplitude, centre, width, offset, slope):  # type: ignore[no-untyped-def]
        return amplitude * np.exp(-0.5 * ((x - centre) / width) ** 2) + offset + slope * x

    fitted, _ = curve_fit(ring, q[band], profile[band], p0=(200.0, 1.7, 0.2, 2.0, 0.0))
    assert fitted[1] == pytest.approx(2 * math.pi / WATER_RING_D_A, abs=0.005)
    assert abs(fitted[2]) == pytest.approx(WATER_RING_SIGMA_Q_INVA, rel=0.03)


@pytest.mark.parametrize(
    "order",
    [("rot3", "rot2", "rot1", "translation"), ("translation", "rot1", "rot2", "rot3")],
    ids=["rotations-first", "translation-first"],
)
def test_the_detector_chain_is_followed_in_any_order(
    tmp_path: Path, powder_run, order: tuple[str, ...]
) -> None:
    """A detector chain rewritten in either order is read as NeXus defines it (the module
    depends on the first axis, each axis on the next): every pixel lands where composing the
    chain's own axes puts it."""
    master, _rot1, _rot2 = powder_run
    folder = tmp_path / "reordered"
    shutil.copytree(master.parent, folder)
    copy = folder / master.name
    transformations = "/entry/instrument/detector/transformations"
    angles = {"rot1": 0.07, "rot2": -0.05, "rot3": 0.3}
    with h5py.File(copy, "r+") as h5:
        detector = h5["/entry/instrument/detector"]
        del detector["depends_on"]
        detector["depends_on"] = f"{transformations}/{order[0]}"
        for name, outer in zip(order, (*order[1:], None), strict=True):
            axis = h5[f"{transformations}/{name}"]
            if name in angles:
                axis[()] = angles[name]
            axis.attrs["depends_on"] = "." if outer is None else f"{transformations}/{outer}"
        offset = h5["/entry/instrument/detector/module/module_offset"]
        offset.attrs["depends_on"] = f"{transformations}/{order[0]}"
        axes = {
            name: (
                np.asarray(h5[f"{transformations}/{name}"].attrs["vector"], dtype=float),
                float(h5[f"{transformations}/{name}"][()]),
            )
            for name in order
        }
        corner_mm = np.asarray(offset.attrs["vector"]) * float(offset[()]) * 1e3
    panel = open_run(copy).geometry.modules[0].panel

    def apply(name: str, point: np.ndarray) -> np.ndarray:
        vector, value = axes[name]
        if name == "translation":
            return point + vector * value * 1e3
        return Rotation.from_rotvec(value * vector).apply(point)

    for x, y in ((0.5, 0.5), (299.5, 10.0), (40.0, 259.5)):
        lab = corner_mm + np.array([-x, -y, 0.0]) * 0.3  # fast = −x̂, slow = −ŷ
        for name in order:  # the module's first axis acts first
            lab = apply(name, lab)
        np.testing.assert_allclose(panel.pixel_to_lab_mm(x, y), lab, atol=1e-9)
