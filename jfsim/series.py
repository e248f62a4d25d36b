"""Messages of one series: what jfjoch_broker would send for an experiment.

The start message carries everything a writer needs to lay out files (stream.md §4.1 and
§6.1); image messages carry pixels plus, optionally, analysis results; the end message closes
the series. Wire names and units are the protocol's (m, eV, degrees); the experiment's
canonical units are converted here, at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from jfsim.experiment import Experiment, GridScan, RotationScan
from jfsim.protocol import Compression, Message, PixelArray, Rational
from jfsim.units import kev_to_ev, mm_to_m, rad_to_deg

__all__ = [
    "TIME_BASE_HZ",
    "ImageAnalysis",
    "end_message",
    "image_fields",
    "image_message",
    "now_ms",
    "start_message",
]

#: Denominator of the image timing rationals (DECTRIS detectors use 50 MHz).
TIME_BASE_HZ = 50_000_000
#: Value of the image messages' ``analysis_source`` when spots and lattice are ground truth.
TRUTH_ANALYSIS_SOURCE = "jfsim-truth"


@dataclass(frozen=True, slots=True)
class ImageAnalysis:
    """Per-image analysis results to put in the Jungfraujoch extension fields.

    Spot positions use the index convention of CXI peak lists (centre of the first pixel at
    0); ``lattice_A`` holds the real-space vectors a, b, c as rows, in Å, lab frame.
    ``source`` says where the numbers come from (``jfsim-truth`` for ground truth).
    """

    spot_x_pxl: np.ndarray
    spot_y_pxl: np.ndarray
    spot_intensity: np.ndarray
    spot_hkl: np.ndarray | None = None
    lattice_A: np.ndarray | None = None
    indexed: bool = False
    source: str = TRUTH_ANALYSIS_SOURCE


def now_ms() -> datetime:
    """Now in UTC, truncated to milliseconds as DECTRIS DateTime values are."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def start_message(
    experiment: Experiment, *, arm_date: datetime | None = None, with_pixel_mask: bool = True
) -> Message:
    """The start message for ``experiment`` (Jungfraujoch flavour of Stream V2)."""
    detector = experiment.detector
    dataset = experiment.dataset
    position = experiment.position
    beam = experiment.beam
    cell = experiment.crystal.unit_cell
    fields: dict = {
        "series_id": dataset.series_id,
        "series_unique_id": dataset.run_name,
        "arm_date": arm_date or now_ms(),
        "beam_center_x": float(position.beam_x_pxl),
        "beam_center_y": float(position.beam_y_pxl),
        "channels": ["default"],
        "count_time": float(dataset.count_time_s),
        "frame_time": float(dataset.frame_time_s),
        "countrate_correction_enabled": False,
        "flatfield_enabled": False,
        "pixel_mask_enabled": with_pixel_mask,
        "detector_description": detector.description,
        "detector_serial_number": detector.serial_number,
        "detector_translation": [0.0, 0.0, float(mm_to_m(position.distance_mm))],
        "detector_distance": float(mm_to_m(position.distance_mm)),
        "image_dtype": detector.image_dtype.name,
        "image_size_x": detector.width_pxl,
        "image_size_y": detector.height_pxl,
        "incident_energy": float(kev_to_ev(beam.energy_keV)),
        "incident_wavelength": float(beam.wavelength_A),
        "number_of_images": dataset.number_of_images,
        "pixel_size_x": float(mm_to_m(detector.pixel_size_mm)),
        "pixel_size_y": float(mm_to_m(detector.pixel_size_mm)),
        "saturation_value": detector.saturation_value,
        "error_value": detector.error_value,
        "sensor_material": detector.sensor_material,
        "sensor_thickness": float(mm_to_m(detector.sensor_thickness_mm)),
        "bit_depth_image": detector.bit_depth_image,
        "file_prefix": dataset.file_prefix,
        "images_per_file": dataset.images_per_file,
        "file_format": dataset.file_format,
        "sample_name": dataset.sample_name,
        "unit_cell": {
            "a": cell.a_A,
            "b": cell.b_A,
            "c": cell.c_A,
            "alpha": cell.alpha_deg,
            "beta": cell.beta_deg,
            "gamma": cell.gamma_deg,
        },
        "space_group_number": experiment.crystal.space_group_number,
        "max_spot_count": dataset.max_spot_count,
        "source_name": dataset.source_name,
        "source_type": dataset.source_type,
        "instrument_name": dataset.instrument_name,
        "total_flux": float(beam.flux_photons_per_s),
        "attenuator_transmission": float(beam.transmission),
        "polarization_factor": float(beam.polarization_factor),
        "poni_rot1": float(position.poni_rot1_rad),
        "poni_rot2": float(position.poni_rot2_rad),
        "poni_rot3": float(position.poni_rot3_rad),
        "write_master_file": True,
    }
    if detector.family == "EIGER2":
        fields["threshold_energy"] = {"default": float(kev_to_ev(beam.energy_keV) / 2)}
    if dataset.experiment_group:
        fields["experiment_group"] = dataset.experiment_group
    if isinstance(experiment.scan, RotationScan):
        scan = experiment.scan
        fields["goniometer"] = {
            scan.axis_name: {
                "start": rad_to_deg(scan.start_rad),
                "increment": rad_to_deg(scan.step_rad),
                "vector": [float(v) for v in scan.axis_vector],
            }
        }
    if isinstance(experiment.scan, GridScan):
        grid = experiment.scan
        fields["grid_scan"] = {
            "n_fast": grid.n_fast,
            "n_slow": grid.n_slow,
            "step_x_um": float(grid.step_x_um),
            "step_y_um": float(grid.step_y_um),
            "snake": grid.snake,
            "vertical": grid.vertical,
        }
    if with_pixel_mask:
        fields["pixel_mask"] = {
            "default": PixelArray.from_numpy(detector.pixel_mask(), Compression.BSLZ4)
        }
    if dataset.header_appendix is not None:
        fields["user_data"] = {"user": dataset.header_appendix}
    return Message("start", fields)


def _timing(experiment: Experiment, image_id: int) -> dict[str, Rational]:
    period = round(experiment.dataset.frame_time_s * TIME_BASE_HZ)
    exposure = round(experiment.dataset.count_time_s * TIME_BASE_HZ)
    return {
        "real_time": Rational(exposure, TIME_BASE_HZ),
        "start_time": Rational(image_id * period, TIME_BASE_HZ),
        "stop_time": Rational(image_id * period + exposure, TIME_BASE_HZ),
    }


def analysis_fields(analysis: ImageAnalysis, max_spot_count: int) -> dict:
    """The Jungfraujoch image-message fields for one image's analysis results.

    Spots are sorted by intensity and cut to ``max_spot_count``, as jfjoch_broker keeps the
    most intense spots.
    """
    order = np.argsort(-np.asarray(analysis.spot_intensity, dtype=np.float64), kind="stable")
    kept = order[:max_spot_count]
    spots = []
    for i in kept:
        spot = {
            "x": float(analysis.spot_x_pxl[i]),
            "y": float(analysis.spot_y_pxl[i]),
            "I": float(analysis.spot_intensity[i]),
            "indexed": analysis.spot_hkl is not None,
        }
        if analysis.spot_hkl is not None:
            h, k, l = (int(v) for v in analysis.spot_hkl[i])  # noqa: E741 - Miller index
            spot |= {"h": h, "k": k, "l": l}
        spots.append(spot)
    fields: dict = {
        "spots": spots,
        "spot_count": len(analysis.spot_intensity),
        "indexing_result": bool(analysis.indexed),
        "analysis_source": analysis.source,
    }
    if analysis.lattice_A is not None:
        lattice = np.asarray(analysis.lattice_A, dtype=np.float64).reshape(3, 3)
        fields["indexing_lattice"] = [float(v) for v in lattice.ravel()]
        fields["indexing_lattice_count"] = 1
        fields["indexing_unit_cell"] = _cell_of_lattice(lattice)
    return fields


def _cell_of_lattice(lattice_A: np.ndarray) -> dict[str, float]:
    a, b, c = lattice_A
    lengths = [float(np.linalg.norm(v)) for v in (a, b, c)]

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        cosine = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        return rad_to_deg(math.acos(max(-1.0, min(1.0, cosine))))

    return {
        "a": lengths[0],
        "b": lengths[1],
        "c": lengths[2],
        "alpha": angle(b, c),
        "beta": angle(a, c),
        "gamma": angle(a, b),
    }


def image_fields(experiment: Experiment, image_id: int) -> dict:
    """The fields of image ``image_id`` that are neither pixels nor analysis: series ids,
    image id, timing and the image appendix. A streamer adds these to pre-encoded frames."""
    dataset = experiment.dataset
    fields: dict = {
        "series_id": dataset.series_id,
        "series_unique_id": dataset.run_name,
        "image_id": image_id,
        **_timing(experiment, image_id),
    }
    if dataset.image_appendix is not None:
        fields["user_data"] = dataset.image_appendix
    return fields


def image_message(
    experiment: Experiment,
    image_id: int,
    pixels: PixelArray,
    analysis: ImageAnalysis | None = None,
) -> Message:
    """One image message: pixels in channel ``default``, timing, and optional analysis."""
    fields = image_fields(experiment, image_id) | {"data": {"default": pixels}}
    if analysis is not None:
        fields |= analysis_fields(analysis, experiment.dataset.max_spot_count)
    return Message("image", fields)


def end_message(
    experiment: Experiment, images_collected: int, *, end_date: datetime | None = None
) -> Message:
    """The end message; ``images_collected`` is how many images were really sent."""
    dataset = experiment.dataset
    return Message(
        "end",
        {
            "series_id": dataset.series_id,
            "series_unique_id": dataset.run_name,
            "end_date": end_date or now_ms(),
            "images_collected": images_collected,
        },
    )
