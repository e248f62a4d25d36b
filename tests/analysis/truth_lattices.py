"""Integrate a run with the lattices its truth file states, as indexing would find them:
the reflection steps tested on their own (prediction, integration, scaling, merging)."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from jfsim.analysis import process as process_module
from jfsim.analysis.analyse import ImageAnalyser
from jfsim.analysis.bragg_prediction import ImageLattice, image_exposure_rad
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.integration import (
    ImageIntegration,
    IntegrationPlan,
    integrate_image,
)
from jfsim.analysis.nxmx_run import NxmxRun
from jfsim.analysis.process import ProcessSummary, process_run
from jfsim.analysis.reflections import IntegratedReflections
from jfsim.analysis.result import ImageAnalysis
from jfsim.analysis.settings import ProcessSettings
from jfsim.geometry import rotation_matrix
from jfsim.truth import read_truth
from tests.analysis.conftest import truth_of


def truth_lattices(run: NxmxRun, truth_path: Path, image: int) -> list[ImageLattice]:
    """The true lattices of run image ``image``, at the middle of its exposure."""
    lattices = []
    exposure = image_exposure_rad(run.geometry, image)
    for number, ub in enumerate(_ub_matrices(truth_path)[image]):
        if not np.isfinite(ub).all():
            continue
        if exposure is not None:
            axis = run.geometry.rotation_axis
            assert axis is not None
            ub = rotation_matrix(axis, exposure[0] + 0.5 * exposure[1]) @ ub
        lattices.append(ImageLattice(ub, lattice=number))
    return lattices


@functools.lru_cache(maxsize=4)
def _ub_matrices(truth_path: Path) -> npt.NDArray[np.float64]:
    return np.asarray(read_truth(truth_path).ub_matrix, dtype=np.float64)


def integrate_with_truth(
    run: NxmxRun, plan: IntegrationPlan, truth_path: Path, images: range
) -> IntegratedReflections:
    """Every image of ``images`` integrated with its true lattices."""
    tables = []
    with FrameReader(run) as reader:
        for image in images:
            pixels = reader.read(image).pixels
            lattices = truth_lattices(run, truth_path, image)
            tables.append(integrate_image(pixels, plan, image, lattices))
    return IntegratedReflections.concatenate(tables)


def cli_settings(*options: str) -> ProcessSettings:
    from jfsim.cli import build_parser
    from jfsim.cli.process import _settings as settings_of

    args = build_parser().parse_args(["process", "x_master.h5", *options])
    settings: ProcessSettings = settings_of(args)
    return settings


def process_with_truth_lattices(
    monkeypatch: pytest.MonkeyPatch, master: Path, prefix: Path, *options: str
) -> ProcessSummary:
    """``jfsim process`` in this process (all images: row = image number), each image
    integrated with its true lattices (give ``-X none`` to leave indexing out)."""
    truth = truth_of(master)

    class TruthLatticeAnalyser(ImageAnalyser):
        def analyse(self, position: int, pixels: Any, **kwargs: Any) -> ImageAnalysis:
            result = super().analyse(position, pixels, **kwargs)
            lattices = tuple(truth_lattices(self.plan.run, truth, position))
            reflections = integrate_image(pixels, self.plan.integration, position, lattices)
            return replace(result, integration=ImageIntegration(lattices, reflections))

    monkeypatch.setattr(process_module, "ImageAnalyser", TruthLatticeAnalyser)
    return process_run(master, prefix, cli_settings(*options), threads=2, device="cpu")
