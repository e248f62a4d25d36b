"""Helpers of the writer tests: a tiny detector, series messages, a PUSH sender."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import zmq

from jfsim.detectors import grid_detector
from jfsim.experiment import (
    Beam,
    Crystal,
    Dataset,
    DetectorPosition,
    Experiment,
    GridScan,
    RotationScan,
    StillsScan,
    UnitCell,
)
from jfsim.protocol import Compression, Message, PixelArray, encode
from jfsim.series import ImageAnalysis, end_message, image_message, start_message

SEND_TIMEOUT_MS = 30_000  # a CLI writer may need a while to start
PROCESS_TIMEOUT_S = 120


def tiny_experiment(
    *,
    file_prefix: str = "run/tiny",
    file_format: str = "vds",
    number_of_images: int = 7,
    images_per_file: int = 3,
    image_dtype: str = "int16",
    scan: object | None = None,
    series_id: int = 1,
) -> Experiment:
    """Two 48 × 24 modules stacked with a 4-pixel gap: 48 × 52 pixels, fast to write."""
    detector = grid_detector(
        name="TINY",
        description="tiny test detector",
        family="TEST",  # no JUNGFRAU chip-border columns: they need full-size modules
        n_modules=2,
        modules_per_row=1,
        module_fast_pxl=48,
        module_slow_pxl=24,
        gap_fast_pxl=0,
        gap_slow_pxl=4,
        image_dtype=image_dtype,
    )
    return Experiment(
        detector=detector,
        beam=Beam(energy_keV=12.4),
        position=DetectorPosition(distance_mm=85.0, beam_x_pxl=20.25, beam_y_pxl=27.5),
        crystal=Crystal(UnitCell(79.1, 79.1, 37.9, 90.0, 90.0, 90.0), 96),
        scan=scan if scan is not None else RotationScan(start_rad=0.1, step_rad=math.radians(0.5)),
        dataset=Dataset(
            number_of_images=number_of_images,
            images_per_file=images_per_file,
            file_prefix=file_prefix,
            file_format=file_format,
            series_id=series_id,
            sample_name="lysozyme",
            header_appendix={"proposal": "p1", "hdf5": {"beamline": "X06SA", "foils": 2}},
            max_spot_count=5,
        ),
    )


SCANS = {
    "rotation": RotationScan(start_rad=0.1, step_rad=math.radians(0.5)),
    "stills": StillsScan(),
    "grid": GridScan(n_fast=3, n_slow=3, step_x_um=5.0, step_y_um=7.0, snake=True),
}


@dataclass(frozen=True)
class SeriesMessages:
    """A complete series: the messages and the pixels each image carries."""

    experiment: Experiment
    start: Message
    images: list[Message]
    end: Message
    pixels: list[np.ndarray]

    def encoded(self) -> list[bytes]:
        return [encode(self.start), *(encode(m) for m in self.images), encode(self.end)]


def make_series(experiment: Experiment, *, seed: int = 3, extras: bool = True) -> SeriesMessages:
    """Random Poisson frames with gaps at the error value, plus analysis fields per image."""
    rng = np.random.default_rng(seed)
    detector = experiment.detector
    mask = detector.pixel_mask()
    n = experiment.dataset.number_of_images
    images, pixels = [], []
    for image_id in range(n):
        frame = rng.poisson(3.0, size=detector.shape).astype(detector.image_dtype)
        frame[mask & 1 == 1] = detector.error_value
        pixels.append(frame)
        n_spots = int(rng.integers(0, 8))
        analysis = ImageAnalysis(
            spot_x_pxl=rng.uniform(0, detector.width_pxl - 1, n_spots),
            spot_y_pxl=rng.uniform(0, detector.height_pxl - 1, n_spots),
            spot_intensity=rng.uniform(10, 1000, n_spots),
            spot_hkl=rng.integers(-10, 10, size=(n_spots, 3)),
            lattice_A=np.diag([79.1, 79.1, 37.9]) + image_id,
            indexed=image_id % 2 == 0,
        )
        message = image_message(
            experiment, image_id, PixelArray.from_numpy(frame, Compression.BSLZ4), analysis
        )
        if extras:
            message.fields.update(
                {
                    "xfel_pulse_id": 1000 + image_id,
                    "bravais_lattice": "tP",
                    "niggli_class": 21,
                    "spot_finding_time": 0.001 * (image_id + 1),
                    "roi_integrals": {"beamstop": {"sum": 10 * image_id, "max_count": image_id}},
                    "az_int_profile": [float(image_id + k) for k in range(4)],
                    "reflections": [
                        {"h": 1, "k": 2, "l": image_id, "I": 5.0, "sigma": 1.0, "x": 3.5, "y": 4.5}
                    ],
                }
            )
        images.append(message)
    return SeriesMessages(
        experiment,
        start_message(experiment),
        images,
        end_message(experiment, n),
        pixels,
    )


def with_dataset(experiment: Experiment, **changes: object) -> Experiment:
    return replace(experiment, dataset=replace(experiment.dataset, **changes))


class Sender:
    """A PUSH socket bound where the writer connects; every send has a timeout.

    It binds a port the kernel picks (``tcp://127.0.0.1:*``) and keeps it for its whole
    life: ``endpoint`` is where to point the writer (no port is released before use).
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, frame: bytes) -> None:
        self.socket.send(frame)

    def send_all(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.socket.send(frame)

    def close(self) -> None:
        self.socket.close()
        self.context.term()


def jfsim_command() -> list[str]:
    return [str(Path(sys.executable).with_name("jfsim"))]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def start_writer(*args: str) -> subprocess.Popen:
    """``jfsim write ARGS`` as a subprocess with piped output."""
    return subprocess.Popen(
        [*jfsim_command(), "write", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a writer that should exit by itself."""
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"jfsim write did not exit; stderr:\n{err}") from None
    return process.returncode, out, err


def run_process(args: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)


def nxvalidate_command() -> str | None:
    candidate = Path(sys.executable).with_name("nxvalidate")
    return str(candidate) if candidate.exists() else shutil.which("nxvalidate")


def check_analysis(entry: h5py.Group, series: SeriesMessages, image_ids) -> None:
    """The per-image analysis arrays under ``entry`` equal the image messages' fields."""
    mx = entry["MX"]
    for row, image_id in enumerate(image_ids):
        fields = series.images[image_id].fields
        spots = fields["spots"]
        assert mx["nPeaks"][row] == len(spots)
        assert np.allclose(mx["peakXPosRaw"][row, : len(spots)], [s["x"] for s in spots])
        assert np.allclose(mx["peakYPosRaw"][row, : len(spots)], [s["y"] for s in spots])
        assert np.allclose(mx["peakTotalIntensity"][row, : len(spots)], [s["I"] for s in spots])
        assert np.all(np.isnan(mx["peakXPosRaw"][row, len(spots) :]))
        assert mx["imageIndexed"][row] == int(fields["indexing_result"])
        assert np.allclose(mx["latticeIndexed"][row], fields["indexing_lattice"])
        assert entry["xfel/pulseID"][row] == fields["xfel_pulse_id"]
        assert entry["profiling/spotFindingTime"][row] == fields["spot_finding_time"]
        assert entry["MX/bravaisLattice"][row] == b"tP" and entry["MX/niggliClass"][row] == 21
        assert entry["roi/beamstop/sum"][row] == fields["roi_integrals"]["beamstop"]["sum"]
        assert np.allclose(entry["azint/image"][row].ravel(), fields["az_int_profile"])
        reflections = entry[f"reflections/image_{image_id:06d}"]
        assert reflections.attrs["NX_class"] == "NXreflections"
        assert reflections["l"][0] == image_id
    assert mx["peakXPosRaw"].shape[1] == 5  # max_spot_count
    assert mx["peakXPosRaw"].attrs["units"] == "pixel"
