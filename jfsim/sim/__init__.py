"""The diffraction image simulator: scene (truth), background, noise, engines, front.

Entry points: :func:`simulate` / :class:`Renderer` (frames + ground truth of an experiment),
:func:`render` (one frame of a plan), :func:`analysis_from_truth` (Jungfraujoch analysis
fields from the truth). Pixel coordinates follow ``jfsim.geometry`` (continuous, pixel
centre at i + 0.5) except in the wire-facing ``ImageAnalysis`` (index convention).
"""

from jfsim.image_truth import ImageTruth, ReflectionTable
from jfsim.sim.frame import FramePlan, SpotList
from jfsim.sim.render import DEVICES, Renderer, SimulatedImage, render, select_engine, simulate
from jfsim.sim.scene import Scene

__all__ = [
    "DEVICES",
    "FramePlan",
    "ImageTruth",
    "ReflectionTable",
    "Renderer",
    "Scene",
    "SimulatedImage",
    "SpotList",
    "render",
    "select_engine",
    "simulate",
]
