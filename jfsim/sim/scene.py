"""What each image of an experiment shows: lattices, predicted reflections, spot list.

The scene is the deterministic, noise-free part of the simulation. For image ``image_id`` it
gives the ground truth (:class:`ImageTruth`: UB matrices and one row per predicted
reflection) and the spots the engines render. Randomness comes from generators keyed by
(experiment seed, purpose, image id), so any image can be made alone, in any order.

All intensities (spots and background) scale with the beam's ``transmission``.

Modes: rotation (one crystal, orientation from the experiment or drawn from the seed, the
image covers [start + k·step, start + (k+1)·step]); stills (per image: hit with probability
``hit_rate``, then ``lattices_per_hit`` random orientations); grid (per position: hit with
probability ``hit_rate``, one random orientation).
"""

from __future__ import annotations

from functools import cached_property

import gemmi
import numpy as np

from jfsim.experiment import Experiment, GridScan, RotationScan, StillsScan, detector_panel
from jfsim.geometry import (
    Panel,
    Predicted,
    RotationPredictor,
    b_matrix,
    observable_miller_indices,
    panel_d_min_A,
    predict_still,
    random_orientation,
)
from jfsim.geometry.prediction import MIN_PARTIALITY
from jfsim.image_truth import ImageTruth, ReflectionTable, UniqueReflections
from jfsim.sim.background import background_image
from jfsim.sim.frame import FramePlan, SpotList, pixel_classes
from jfsim.sim.intensities import full_photons, squared_amplitudes

#: Spot width without mosaic smearing (rms, pixels; physics.md §2.9).
SPOT_SIGMA0_PXL = 0.7
#: Upper bound of the rendered spot width (pixels).
SPOT_SIGMA_MAX_PXL = 3.0
_ORIENTATION_STREAM = 0
_STILLS_STREAM = 1


class Scene:
    """The noise-free model of an experiment, built once, queried per image."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        detector = experiment.detector
        self.wavelength_A = experiment.beam.wavelength_A
        self.panel: Panel = detector_panel(experiment)
        beam_x, beam_y, _ = self.panel.ray_to_pixel(np.array([0.0, 0.0, 1.0]))
        self.direct_beam_pxl = (float(beam_x), float(beam_y))
        self.pixel_class = pixel_classes(detector.pixel_mask())
        crystal = experiment.crystal
        self.d_min_A = max(crystal.resolution_limit_A, panel_d_min_A(self.panel, self.wavelength_A))
        self.cell = crystal.unit_cell.as_tuple()
        self.hkl = observable_miller_indices(self.cell, crystal.space_group_number, self.d_min_A)
        self.b_matrix = b_matrix(self.cell)
        self._rotation: RotationPredictor | None = None
        if isinstance(experiment.scan, RotationScan):
            self.rotation_ub = self._rotation_orientation() @ self.b_matrix
            self._rotation = RotationPredictor(
                ub=self.rotation_ub,
                hkl=self.hkl,
                axis=experiment.scan.axis_vector,
                wavelength_A=self.wavelength_A,
                panel=self.panel,
                mosaicity_rad=crystal.mosaicity_rad,
                divergence_rad=experiment.beam.divergence_rad,
                polarization_factor=experiment.beam.polarization_factor,
            )

    @property
    def max_lattices(self) -> int:
        """The most lattices any image can hold (width of the truth file's UB table)."""
        scan = self.experiment.scan
        return scan.lattices_per_hit if isinstance(scan, StillsScan) else 1

    @cached_property
    def background_photons(self) -> np.ndarray:
        """Expected background photons per pixel, float32 ``[H, W]`` (computed once)."""
        experiment = self.experiment
        return background_image(
            experiment.background,
            self.panel,
            self.wavelength_A,
            experiment.beam.polarization_factor,
        ) * np.float32(experiment.beam.transmission)

    def frame_plan(self) -> FramePlan:
        """The fixed part of every frame: background, pixel classes, sentinels, seed."""
        experiment = self.experiment
        detector = experiment.detector
        return FramePlan(
            background_photons=self.background_photons,
            pixel_class=self.pixel_class,
            image_dtype=detector.image_dtype,
            saturation_value=detector.saturation_value,
            error_value=detector.error_value,
            seed=experiment.seed,
            poisson_noise=experiment.background.poisson_noise,
        )

    def _rotation_orientation(self) -> np.ndarray:
        orientation = self.experiment.crystal.orientation
        if orientation is not None:
            return np.array(orientation, dtype=np.float64)
        return random_orientation(
            np.random.default_rng([self.experiment.seed, _ORIENTATION_STREAM])
        )

    def _lattices_of_still(self, image_id: int) -> list[np.ndarray]:
        scan = self.experiment.scan
        if not isinstance(scan, StillsScan | GridScan):
            raise TypeError(f"a {scan.kind} scan has no stills")
        rng = np.random.default_rng([self.experiment.seed, _STILLS_STREAM, image_id])
        hit = rng.random() < scan.hit_rate
        count = scan.lattices_per_hit if isinstance(scan, StillsScan) else 1
        if not hit:
            return []
        return [random_orientation(rng) @ self.b_matrix for _ in range(count)]

    def image(self, image_id: int) -> tuple[ImageTruth, SpotList]:
        """Ground truth and spot list of image ``image_id`` (0-based)."""
        scan = self.experiment.scan
        if isinstance(scan, RotationScan):
            assert self._rotation is not None
            lo = scan.start_rad + image_id * scan.step_rad
            predicted = [
                self._rotation.predict(lo, lo + scan.step_rad, min_partiality=MIN_PARTIALITY)
            ]
            ubs = [self.rotation_ub]
        elif isinstance(scan, StillsScan | GridScan):
            ubs = self._lattices_of_still(image_id)
            predicted = [self._predict_still(ub) for ub in ubs]
        else:  # pragma: no cover - the experiment model has no other scan kinds
            raise TypeError(f"unknown scan {scan!r}")
        tables = [self._table(lattice, p) for lattice, p in enumerate(predicted)]
        reflections = ReflectionTable.concatenate(tables)
        ub_matrices = np.array(ubs, dtype=np.float64).reshape(len(ubs), 3, 3)
        truth = ImageTruth(image_id=image_id, ub_matrices=ub_matrices, reflections=reflections)
        return truth, self._spots(reflections)

    def _predict_still(self, ub: np.ndarray) -> Predicted:
        crystal = self.experiment.crystal
        beam = self.experiment.beam
        return predict_still(
            ub=ub,
            hkl=self.hkl,
            wavelength_A=self.wavelength_A,
            panel=self.panel,
            mosaicity_rad=crystal.mosaicity_rad,
            divergence_rad=beam.divergence_rad,
            bandwidth_fraction=beam.bandwidth_fraction,
            domain_size_A=crystal.domain_size_A,
            polarization_factor=beam.polarization_factor,
            min_partiality=MIN_PARTIALITY,
        )

    def _table(self, lattice: int, predicted: Predicted) -> ReflectionTable:
        crystal = self.experiment.crystal
        amplitudes = squared_amplitudes(crystal, predicted.hkl, self.experiment.seed)
        full = self.experiment.beam.transmission * full_photons(
            crystal, amplitudes, predicted.d_A, predicted.lorentz, predicted.polarization
        )
        rows = np.clip(np.floor(predicted.y_pxl).astype(np.int64), 0, self.panel.height_pxl - 1)
        cols = np.clip(np.floor(predicted.x_pxl).astype(np.int64), 0, self.panel.width_pxl - 1)
        n = len(predicted)
        return ReflectionTable(
            lattice=np.full(n, lattice, dtype=np.int32),
            h=predicted.hkl[:, 0].astype(np.int32),
            k=predicted.hkl[:, 1].astype(np.int32),
            l=predicted.hkl[:, 2].astype(np.int32),
            x_pxl=predicted.x_pxl,
            y_pxl=predicted.y_pxl,
            phi_deg=np.degrees(predicted.phi_rad),
            excitation_error_invA=predicted.excitation_error_invA,
            partiality=predicted.partiality,
            intensity_photons=full * predicted.partiality,
            d_A=predicted.d_A,
            masked=self.pixel_class[rows, cols] != 0,
            sigma_pxl=self.spot_sigma_pxl(predicted.x_pxl, predicted.y_pxl),
            background_photons=self.background_photons[rows, cols].astype(np.float64),
        )

    def unique_reflections(self) -> UniqueReflections:
        """The full intensity of every unique reflection to the scene's resolution limit
        (the truth file's ``/unique_reflections``, what merging estimates)."""
        crystal = self.experiment.crystal
        space_group = gemmi.find_spacegroup_by_number(crystal.space_group_number)
        cell = gemmi.UnitCell(*self.cell)
        hkl = np.asarray(
            gemmi.make_miller_array(cell, space_group, self.d_min_A, 0, True), dtype=np.int32
        )
        d_A = np.asarray(cell.calculate_d_array(hkl), dtype=np.float64)
        ones = np.ones(hkl.shape[0])
        amplitudes = squared_amplitudes(crystal, hkl, self.experiment.seed)
        full = self.experiment.beam.transmission * full_photons(
            crystal, amplitudes, d_A, ones, ones
        )
        return UniqueReflections(
            h=hkl[:, 0].copy(),
            k=hkl[:, 1].copy(),
            l=hkl[:, 2].copy(),
            d_A=d_A,
            intensity_full_photons=full,
        )

    def spot_sigma_pxl(self, x_pxl: np.ndarray, y_pxl: np.ndarray) -> np.ndarray:
        """Isotropic spot width: σ² = σ0² + ½(R·σ_M)², R the distance from the direct beam in
        pixels (the mosaic term smears spots tangentially; half of it goes to each axis)."""
        radius = np.hypot(x_pxl - self.direct_beam_pxl[0], y_pxl - self.direct_beam_pxl[1])
        mosaic = radius * self.experiment.crystal.mosaicity_rad
        sigma = np.sqrt(SPOT_SIGMA0_PXL**2 + 0.5 * mosaic**2)
        return np.minimum(sigma, SPOT_SIGMA_MAX_PXL)

    def _spots(self, reflections: ReflectionTable) -> SpotList:
        return SpotList(
            x_pxl=reflections.x_pxl,
            y_pxl=reflections.y_pxl,
            sigma_pxl=reflections.sigma_pxl,
            photons=reflections.intensity_photons,
        )
