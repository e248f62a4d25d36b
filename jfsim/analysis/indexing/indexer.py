"""Indexing one image: spots in, :class:`ImageIndexing` out (analysis.md §3).

The pipeline of one image, each step a reason to stop (:data:`FAILURE_STEPS`):

1. the spots' scattering vectors (ice-ring spots left out unless ``index_ice_rings``);
   fewer than ``viable_cell_min_spots`` → ``too_few_spots``;
2. a basis: the known-cell search (``FFBIDX``) or the FFT search (``FFT``); none →
   ``no_lattice``;
3. its setting: the reference cell's (``-C``, with ``-S``'s centring) within
   ``unit_cell_dist_tolerance`` — else ``cell_mismatch`` — or, without a cell, the
   conventional setting of its Bravais lattice;
4. refinement (``-r``), twice, with the spots re-assigned in between;
5. every spot's Miller indices; fewer than ``viable_cell_min_spots`` indexed →
   ``too_few_indexed``.

With two-pass rotation indexing the run's lattice (found once, :mod:`.rotation`) replaces
steps 2–4: each image's lattice is the run's turned to the middle of its exposure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from types import ModuleType

import gemmi
import numpy as np
import numpy.typing as npt

from jfsim import engines
from jfsim.analysis.geometry import RunGeometry
from jfsim.analysis.indexing.engines import ScoringEngine, cpu, gpu
from jfsim.analysis.indexing.fft import FftOptions, search_fft
from jfsim.analysis.indexing.known_cell import KnownCellOptions, search_known_cell
from jfsim.analysis.indexing.lattice import (
    Lattice,
    ReferenceCell,
    bravais_lattice,
    cell_of,
    match_reference,
)
from jfsim.analysis.indexing.reciprocal import (
    image_frame,
    scattering_vectors,
    scattering_vectors_of_lab,
    spot_positions,
)
from jfsim.analysis.indexing.refine import refine_positions
from jfsim.analysis.indexing.settings import IndexingConfig
from jfsim.analysis.indexing.solution import ImageIndexing, assign, image_numbers
from jfsim.analysis.spot_finding import Spots

__all__ = ["ImageIndexer", "IndexingPlan", "RunLattice", "indexing_plan", "select_scoring"]

_log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_ENGINES: dict[str, ModuleType] = {cpu.NAME: cpu, gpu.NAME: gpu}
#: Centrings tried, in order, for a reference cell given without a space group.
_CENTRINGS = ("P", "I", "F", "C", "A", "B", "R")
#: Refinement rounds (re-assigning the spots in between).
REFINEMENT_ROUNDS = 2


def select_scoring(device: str) -> ModuleType:
    """The indexing engine module for ``device`` (:func:`jfsim.engines.select_engine`)."""
    return engines.select_engine(device, _ENGINES)


@dataclass(frozen=True)
class RunLattice:
    """The lattice of a whole rotation run at φ = 0 and its beam-centre correction."""

    lattice: Lattice
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0)

    @property
    def vectors_A(self) -> list[float]:
        """The 9 numbers of ``rotationLatticeIndexed`` (a, b, c, Å)."""
        return [float(v) for v in self.lattice.real_space_A.reshape(-1)]


@dataclass(frozen=True)
class IndexingPlan:
    """Indexing settings resolved for one run.

    Attributes:
        algorithm: ``ffbidx`` or ``fft`` (``auto`` resolved).
        references: the reference cell in each setting to try (empty without ``-C``).
        two_pass: two-pass rotation indexing (a rotation run and ``rotation_indexing``).
        run_lattice: the run's lattice once found (or forced), for two-pass runs.
    """

    geometry: RunGeometry
    config: IndexingConfig
    algorithm: str
    references: tuple[ReferenceCell, ...]
    tolerance: float
    min_spots: int
    cell_tolerance: float
    refinement: str
    index_ice_rings: bool
    fft: FftOptions
    known_cell: KnownCellOptions
    two_pass: bool = False
    run_lattice: RunLattice | None = None

    def with_run_lattice(self, found: RunLattice | None) -> IndexingPlan:
        return replace(self, run_lattice=found)


def _references(
    config: IndexingConfig, space_group_number: int | None
) -> tuple[ReferenceCell, ...]:
    cell = config.cell
    if cell is None:
        return ()
    if space_group_number is not None:
        group = gemmi.find_spacegroup_by_number(space_group_number)
        return (ReferenceCell(cell, group.centring_type(), space_group_number),)
    return tuple(ReferenceCell(cell, centring) for centring in _CENTRINGS)


def indexing_plan(
    config: IndexingConfig,
    geometry: RunGeometry,
    *,
    space_group_number: int | None = None,
    enabled: bool = True,
) -> IndexingPlan | None:
    """The plan for a run, or None when indexing is off (``-X none``);
    ``space_group_number`` (-S) gives the reference cell's centring."""
    if not enabled or config.algorithm == "none":
        return None
    settings = config.indexing
    algorithm = config.algorithm
    if algorithm == "auto":
        algorithm = "ffbidx" if config.cell is not None else "fft"
    is_rotation = geometry.rotation_axis is not None
    two_pass = bool(settings.rotation_indexing) and is_rotation
    if settings.rotation_indexing and not is_rotation:
        _log.info("-R: the run is not a rotation (no scanned axis): indexing images one by one")
    references = _references(config, space_group_number)
    run_lattice = None
    if two_pass and config.rotation_lattice_A is not None:
        forced = np.asarray(config.rotation_lattice_A, dtype=np.float64).reshape(3, 3)
        run_lattice = RunLattice(
            _forced_lattice(forced, references, float(settings.unit_cell_dist_tolerance))
        )
    return IndexingPlan(
        geometry=geometry,
        config=config,
        algorithm=algorithm,
        references=references,
        tolerance=float(settings.tolerance),
        min_spots=int(settings.viable_cell_min_spots),
        cell_tolerance=float(settings.unit_cell_dist_tolerance),
        refinement=config.refinement,
        index_ice_rings=bool(settings.index_ice_rings),
        fft=FftOptions(
            directions=int(settings.fft_num_vectors),
            min_cell_A=float(settings.fft_min_unit_cell_a),
            max_cell_A=float(settings.fft_max_unit_cell_a),
            high_resolution_A=float(settings.fft_high_resolution_a),
        ),
        known_cell=KnownCellOptions(),
        two_pass=two_pass,
        run_lattice=run_lattice,
    )


def _forced_lattice(
    forced: FloatArray, references: tuple[ReferenceCell, ...], tolerance: float
) -> Lattice:
    """``--force-rotation-lattice``: the vectors as given when they are already in the
    conventional setting of their Bravais type (or of the reference cell, ``-C``), labelled
    with it; else that setting; ``aP`` as given when nothing fits."""
    found = _setting(forced, references, tolerance) if references else bravais_lattice(forced)
    if found is None:
        return Lattice(_right_handed(forced), "aP")
    if np.allclose(found.cell, cell_of(forced), rtol=1e-3, atol=0.05):
        return Lattice(_right_handed(forced), found.bravais)
    return found


def _right_handed(basis: FloatArray) -> FloatArray:
    return basis if np.linalg.det(basis) > 0 else -basis


def _setting(
    basis: FloatArray, references: tuple[ReferenceCell, ...], tolerance: float
) -> Lattice | None:
    """``basis``'s lattice in the first reference setting it matches (None: none does)."""
    for reference in references:
        matched = match_reference(basis, reference, tolerance)
        if matched is not None:
            return matched
    return None


def find_lattice(
    r_invA: FloatArray, plan: IndexingPlan, engine: ScoringEngine
) -> tuple[Lattice | None, str | None]:
    """Steps 2 and 3: (a lattice in its setting, None) or (None, the failing step)."""
    if plan.algorithm == "ffbidx":
        reference = plan.references[0]
        basis = search_known_cell(r_invA, reference, engine, plan.tolerance, plan.known_cell)
        if basis is None:
            return None, "no_lattice"
        return Lattice(basis, reference.bravais), None
    basis = search_fft(r_invA, engine, plan.tolerance, plan.fft)
    if basis is None:
        return None, "no_lattice"
    if plan.references:
        matched = _setting(basis, plan.references, plan.cell_tolerance)
        return (matched, None) if matched is not None else (None, "cell_mismatch")
    return bravais_lattice(basis), None


def refine(
    lattice: Lattice,
    x_index: FloatArray,
    y_index: FloatArray,
    plan: IndexingPlan,
    *,
    rotations: FloatArray | None = None,
    beam_shift_pxl: tuple[float, float] = (0.0, 0.0),
    positions: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[Lattice, tuple[float, float]]:
    """Step 4: ``REFINEMENT_ROUNDS`` rounds of assign + refine over spots at (x, y) (each
    with its goniometer rotation ``rotations`` for rotation data). ``positions``: the
    spots' :func:`.reciprocal.spot_positions` at ``beam_shift_pxl`` when the caller has
    them; they are looked up again only when a round moved the beam centre."""
    geometry = plan.geometry
    for _round in range(REFINEMENT_ROUNDS if plan.refinement != "none" else 0):
        if positions is None:
            positions = spot_positions(geometry, x_index, y_index, beam_shift_pxl=beam_shift_pxl)
        lab_mm, steps_mm = positions
        r_lab = scattering_vectors_of_lab(lab_mm, geometry.wavelength_A)
        r = r_lab if rotations is None else np.einsum("nji,nj->ni", rotations, r_lab)
        assignment = assign(lattice, r, plan.tolerance, geometry.wavelength_A)
        refined = refine_positions(
            lattice,
            assignment.hkl,
            lab_mm,
            steps_mm,
            geometry.wavelength_A,
            plan.refinement,
            rotations=rotations,
            beam_shift_pxl=beam_shift_pxl,
            chosen=assignment.indexed,
        )
        if refined.beam_shift_pxl != beam_shift_pxl:
            positions = None
        lattice, beam_shift_pxl = refined.lattice, refined.beam_shift_pxl
    return lattice, beam_shift_pxl


class ImageIndexer:
    """One prepared indexing engine for ``plan``: spots in, :class:`ImageIndexing` out.
    One per thread (like the analysis engines)."""

    def __init__(self, plan: IndexingPlan, *, device: str = "auto") -> None:
        self.plan = plan
        module = select_scoring(device)
        self.engine: ScoringEngine = module.prepare(None)

    def index(self, spots: Spots, image_number: int) -> ImageIndexing:
        """Index one image's spots (``image_number``: 0-based in the run, for its
        goniometer angle)."""
        plan = self.plan
        started = time.perf_counter()
        if plan.two_pass:
            if plan.run_lattice is None:
                return self._failed("no_lattice", algorithm="rotation")
            rotation = image_frame(plan.geometry, image_number).rotation
            lattice = plan.run_lattice.lattice.rotated(rotation)
            beam_shift = plan.run_lattice.beam_shift_pxl
            algorithm = "rotation"
            searched = time.perf_counter()
        else:
            usable = None if plan.index_ice_rings else ~spots.ice_ring
            x = spots.x if usable is None else spots.x[usable]
            y = spots.y if usable is None else spots.y[usable]
            if x.size < plan.min_spots:
                return self._failed("too_few_spots")
            positions = spot_positions(plan.geometry, x, y)
            r_invA = scattering_vectors_of_lab(positions[0], plan.geometry.wavelength_A)
            found, failure = find_lattice(r_invA, plan, self.engine)
            searched = time.perf_counter()
            if found is None:
                return self._failed(failure, indexing_s=searched - started)
            lattice, beam_shift = refine(found, x, y, plan, positions=positions)
            algorithm = plan.algorithm
        refined = time.perf_counter()
        r_all = scattering_vectors(plan.geometry, spots.x, spots.y, beam_shift_pxl=beam_shift)
        assignment = assign(lattice, r_all, plan.tolerance, plan.geometry.wavelength_A)
        radius, resolution = image_numbers(assignment, r_all)
        result = ImageIndexing(
            lattice=lattice,
            spots=assignment,
            profile_radius_invA=radius,
            resolution_estimate_A=resolution,
            beam_shift_pxl=beam_shift,
            algorithm=algorithm,
            engine=self.engine.name,
            indexing_s=searched - started,
            refinement_s=refined - searched,
        )
        if assignment.n_indexed < plan.min_spots:
            return replace(result, lattice=None, spots=None, failure="too_few_indexed")
        return result

    def _failed(
        self, failure: str | None, *, algorithm: str | None = None, indexing_s: float = 0.0
    ) -> ImageIndexing:
        """The result of an image that failed at step ``failure``."""
        return ImageIndexing(
            None,
            failure=failure,
            algorithm=algorithm or self.plan.algorithm,
            engine=self.engine.name,
            indexing_s=indexing_s,
        )
