"""The ground truth of a streamed series whose images reuse frames (``--truth-out``).

Image ``k`` of a stream sends frame ``f = k mod K``, rendered as image ``f`` of the
experiment. Its truth is frame ``f``'s, given id ``k``: the same reflections at the same
pixels, the same content checksum. For a rotation scan the truth file states orientations
at scan angle 0 and the writer's file puts image ``k`` at angle ``start + k·step``, so the
stored UB is turned back by ``(k − f)·step`` and each reflection's crossing angle moved
forward by as much: rotated to image ``k``'s angle, the truth is frame ``f``'s lattice as
sent. A series streamed this way is scored like a simulated one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jfsim.experiment import Experiment, RotationScan
from jfsim.geometry import rotation_matrix
from jfsim.image_truth import ImageTruth, UniqueReflections
from jfsim.truth import TruthWriter
from jfsim.units import rad_to_deg

__all__ = ["FrameTruth", "reused_truth", "write_streamed_truth"]

#: Images whose truth is appended to the file at once (one resize per dataset).
_IMAGES_PER_WRITE = 256


@dataclass(frozen=True, slots=True)
class FrameTruth:
    """The truth of one distinct frame and the checksum of its pixels (``jfsim.truth``)."""

    truth: ImageTruth
    pixel_sha256: bytes


def reused_truth(truth: ImageTruth, image_id: int, experiment: Experiment) -> ImageTruth:
    """``truth`` (of the frame rendered as image ``truth.image_id``) as the truth of
    ``image_id``, which sends that frame."""
    shift = image_id - truth.image_id
    scan = experiment.scan
    if not shift or not isinstance(scan, RotationScan):
        return dataclasses.replace(truth, image_id=image_id)
    turn_back = rotation_matrix(scan.axis_vector, -shift * scan.step_rad)
    reflections = dataclasses.replace(
        truth.reflections,
        phi_deg=truth.reflections.phi_deg + shift * rad_to_deg(scan.step_rad),
    )
    return ImageTruth(image_id, turn_back @ truth.ub_matrices, reflections)


def write_streamed_truth(
    path: str | Path,
    experiment: Experiment,
    frames: Sequence[FrameTruth],
    number_of_images: int,
    *,
    max_lattices: int,
    unique_reflections: UniqueReflections | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the truth of images ``0 … number_of_images − 1``, image ``k`` sending
    ``frames[k % len(frames)]``, and the run's full intensities when given; returns the
    path (written as ``.tmp``, then renamed)."""
    if not frames:
        raise ValueError("no frame truth: build the pool before writing its truth")
    dataset = dataclasses.replace(experiment.dataset, number_of_images=number_of_images)
    streamed = dataclasses.replace(experiment, dataset=dataset)
    with TruthWriter(path, streamed, max_lattices=max_lattices) as writer:
        if unique_reflections is not None:
            writer.write_unique_reflections(unique_reflections)
        for first in range(0, number_of_images, _IMAGES_PER_WRITE):
            ids = range(first, min(first + _IMAGES_PER_WRITE, number_of_images))
            sent = [frames[image_id % len(frames)] for image_id in ids]
            truths = [
                reused_truth(frame.truth, image_id, experiment)
                for frame, image_id in zip(sent, ids, strict=True)
            ]
            writer.write_many(truths, [frame.pixel_sha256 for frame in sent])
            if on_progress is not None:
                on_progress(ids[-1] + 1, number_of_images)
    return Path(path)
