"""``jfsim process`` end to end, as a real subprocess on files written by jfsim's writer:
the _process.h5 layout, its conformance, feeding settings back, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - registers the bitshuffle filter for reading
import numpy as np
import pytest

from jfsim.analysis.frames import FrameReader
from jfsim.analysis.nxmx_run import open_run
from jfsim.analysis.process_file import CONFIGURATION_PATH, PROCESS_GROUP
from jfsim.analysis.settings import ProcessSettings
from jfsim.recording import read_recording
from jfsim.simulate import write_simulation
from jfsim.writer import SeriesState, SeriesWriter
from tests.analysis.conftest import run_cli, truth_of
from tests.analysis.runs import tiny_experiment

RESULT_GROUPS = ("MX", "azint", "roi", "image")


def _datasets(path: Path, groups: tuple[str, ...] = RESULT_GROUPS) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        for group in groups:
            if group not in h5["entry"]:
                continue

            def keep(name: str, obj: object, group: str = group) -> None:
                if isinstance(obj, h5py.Dataset):
                    found[f"{group}/{name}"] = np.asarray(obj[()])

            h5["entry"][group].visititems(keep)
    return found


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a
    )


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_a_subset_of_any_layout_becomes_a_conforming_process_file(
    tiny_rotation: dict[str, Path], tmp_path: Path, layout: str
) -> None:
    master = tiny_rotation[layout]
    prefix = tmp_path / "out" / "run"
    result = run_cli(
        "jfsim", "process", master, "-o", prefix, "-s", "1", "-e", "4", "-t", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images_analysed"] == 2 and summary["engine"] == "cpu"
    output = Path(summary["output"])
    assert output == prefix.parent / "run_process.h5" and output.is_file()
    assert not list(output.parent.glob("*.tmp"))
    with h5py.File(output, "r") as h5, h5py.File(master, "r") as raw:
        images = h5["/entry/data/data"]
        assert images.is_virtual and images.shape[0] == 2
        with FrameReader(open_run(master)) as reader:  # rows 0, 1 are images 1 and 3
            assert np.array_equal(images[1], reader.read(3).pixels)
        assert h5["/entry/instrument/detector/data"] == images
        numbers = h5["/entry/instrument/detector/detectorSpecific/number"][()]
        assert numbers.tolist() == [1, 3]
        omega = h5["/entry/sample/transformations/omega"][()]
        assert omega.tolist() == raw["/entry/sample/transformations/omega"][[1, 3]].tolist()
        assert h5["/entry/MX/peakXPosRaw"].shape == (2, 250)
        assert h5["/entry/MX/nPeaks"][()].min() > 3
        assert h5["/entry/azint/image"].shape[0] == 2
        assert h5["/entry/azint/map"].shape == images.shape[1:]
        assert h5["/entry/image/pixel_sum"][()].min() > 0
        process = h5[PROCESS_GROUP]
        assert process.attrs["NX_class"] == "NXprocess"
        assert process["program"][()].decode() == "jfsim process"
        assert process["sequence_index"][()] == 1
        note = process["configuration"]
        assert note.attrs["NX_class"] == "NXnote"
        assert note["type"][()].decode() == "application/json"
        settings = ProcessSettings.from_json(h5[CONFIGURATION_PATH][()].decode())
        assert (settings.images.start, settings.images.end, settings.images.stride) == (1, 4, 2)
    # NXR-005: seed 001's pixel positions in the reflection tables (its documented departure)
    check = run_cli(
        "jfconform", "check", output, "--fail-on", "warning", "--ignore", "NXR-005", "--json"
    )
    assert check.returncode == 0, check.stdout[-3000:]
    scored = run_cli("jfconform", "check", output, "--truth", truth_of(master), "--json")
    truth = json.loads(scored.stdout)["truth"]
    assert truth["scores"]["spot_recall"]["n"] > 10  # scored against images 1 and 3
    assert truth["scores"]["spot_precision"]["value"] > 0.8
    # indexed de novo (-X auto without a cell: FFT), rows matched to images 1 and 3
    assert truth["scores"]["indexing_rate"]["value"] == 1.0
    assert truth["scores"]["indexing_rate"]["n"] == 2
    assert truth["scores"]["misorientation_deg"]["value"] < 1.0
    assert truth["frames"]["frames_matching"] == 2  # the rows' own images, by checksum


def test_settings_from_an_earlier_run_reproduce_it(tiny_stills: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "spot_finding": {"photon_count_threshold": 4, "min_pix_per_spot": 1},
                "azim_int": {"q_spacing": 0.04, "azimuthal_bins": 2},
                "roi": {
                    "box": {
                        "rois": [
                            {
                                "name": "b",
                                "min_x_pxl": 0,
                                "max_x_pxl": 20,
                                "min_y_pxl": 0,
                                "max_y_pxl": 20,
                            }
                        ]
                    },
                    "circle": {"rois": []},
                    "azim": {"rois": [{"name": "ring", "q_min_recipA": 0.8, "q_max_recipA": 1.2}]},
                },
            }
        ),
        encoding="utf-8",
    )
    first = run_cli(
        "jfsim",
        "process",
        tiny_stills,
        "-o",
        tmp_path / "a",
        "--settings",
        settings,
        "--spot-sigma",
        "3.5",
        "--max-spots",
        "40",
    )
    assert first.returncode == 0, first.stderr
    assert "images_per_s" in first.stdout and "spots_per_image" in first.stdout  # the table
    assert "process: 3/3 images" in first.stderr  # progress
    again = run_cli(
        "jfsim",
        "process",
        tiny_stills,
        "-o",
        tmp_path / "b",
        "--settings-from",
        tmp_path / "a_process.h5",
    )
    assert again.returncode == 0, again.stderr
    a, b = tmp_path / "a_process.h5", tmp_path / "b_process.h5"
    assert _same(_datasets(a), _datasets(b))
    assert _datasets(a)["MX/peakXPosRaw"].shape == (3, 40)
    assert set(_datasets(a, ("roi_defs",))) >= {"roi_defs/b/type", "roi_defs/ring/q_min_recipA"}
    with h5py.File(a, "r") as one, h5py.File(b, "r") as two:
        assert one[CONFIGURATION_PATH][()] == two[CONFIGURATION_PATH][()]
    shown = run_cli("jfsim", "process", tiny_stills, "--settings-from", a, "--show-settings")
    assert json.loads(shown.stdout)["spot_finding"]["signal_to_noise_threshold"] == 3.5


def test_dask_and_threads_give_identical_analysis(tiny_stills: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    threaded = run_cli("jfsim", "process", tiny_stills, "-o", tmp_path / "t", "-N", "2")
    assert threaded.returncode == 0, threaded.stderr
    distributed = run_cli(
        "jfsim", "process", tiny_stills, "-o", tmp_path / "d", "-N", "2", "--dask", "--json"
    )
    assert distributed.returncode == 0, distributed.stderr
    assert json.loads(distributed.stdout)["dask_scheduler"] == "local"
    threaded_results = _datasets(tmp_path / "t_process.h5")
    assert _same(threaded_results, _datasets(tmp_path / "d_process.h5"))
    assert threaded_results["MX/nPeaks"].sum() > 20


def _one_line_error(result, *named: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfsim process: error: "), lines
    for name in named:
        assert name in lines[0]


def test_bad_input_is_one_line_and_exit_2(tiny_stills: Path, tmp_path: Path, capsys) -> None:
    """Through the CLI's own main() (one real subprocess at the end): every refusal is one
    line naming the input, exit status 2, and nothing is written."""
    from jfsim.cli import main

    def refused(*args: object) -> str:
        status = main(["process", *(str(a) for a in args)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1, lines
        assert lines[0].startswith("jfsim process: error: ")
        return lines[0]

    not_hdf5 = tmp_path / "notes_master.h5"
    not_hdf5.write_text("hello", encoding="utf-8")
    assert "not an HDF5" in refused(not_hdf5, "-o", tmp_path / "x")
    plain = tmp_path / "plain_master.h5"
    with h5py.File(plain, "w") as h5:
        h5.create_group("entry").attrs["NX_class"] = "NXentry"
    assert "not an NXmx" in refused(plain, "-o", tmp_path / "x")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"spot_finding": {"sigma": 3}}', encoding="utf-8")
    message = refused(tiny_stills, "-o", tmp_path / "x", "--settings", unknown)
    assert "unknown.json" in message and "'sigma'" in message
    bad = tmp_path / "bad.json"
    bad.write_text('{"azim_int": {"q_spacing": -1}}', encoding="utf-8")
    assert "azim_int.q_spacing" in refused(tiny_stills, "-o", tmp_path / "x", "--settings", bad)
    assert "only 3 images" in refused(tiny_stills, "-o", tmp_path / "x", "-s", "7")
    message = refused(tiny_stills, "-o", tmp_path / "x", "--spot-sigma", "-2")
    assert "signal_to_noise_threshold" in message
    assert "--settings-from" in refused(tiny_stills, "--settings-from", bad)
    assert not list(tmp_path.glob("x_process.h5*"))  # nothing written, not even a .tmp
    first = run_cli("jfsim", "process", tiny_stills, "-o", tmp_path / "y")
    assert first.returncode == 0, first.stderr
    _one_line_error(run_cli("jfsim", "process", tiny_stills, "-o", tmp_path / "y"), "--overwrite")


def test_a_missing_data_file_is_named(tiny_rotation: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(tiny_rotation["vds"].parent, folder)
    (folder / "run_data_000002.h5").unlink()
    result = run_cli("jfsim", "process", folder / "run_master.h5", "-o", tmp_path / "x")
    _one_line_error(result, "run_data_000002.h5", "missing")


@pytest.mark.parametrize("layout", ["legacy", "vds"])
def test_frames_of_the_wrong_size_are_named(
    tiny_rotation: dict[str, Path], tmp_path: Path, layout: str
) -> None:
    folder = tmp_path / "run"
    shutil.copytree(tiny_rotation[layout].parent, folder)
    with h5py.File(folder / "run_data_000002.h5", "r+") as h5:
        del h5["/entry/data/data"]
        h5.create_dataset("/entry/data/data", data=np.zeros((1, 10, 10), dtype=np.int16))
    result = run_cli("jfsim", "process", folder / "run_master.h5", "-o", tmp_path / "x")
    _one_line_error(result, "run_data_000002.h5", "10")


def test_corrupt_and_unwritten_frames_are_skipped_counted_and_reported(tmp_path: Path) -> None:
    """A chunk of garbage and an image the writer never received: both skipped (never read as
    zeros), listed in the summary and the file, exit status 1; the other images are fine."""
    experiment = tiny_experiment(n_images=4)
    summary = write_simulation(experiment, tmp_path / "sim", device="cpu")
    messages = list(read_recording(summary.recording_path))
    writer = SeriesWriter(messages[0], tmp_path / "files")
    for message in messages[1:-1]:
        if message.fields["image_id"] != 2:  # image 2 is lost on the way
            writer.add_image(message)
    writer.finish(messages[-1], SeriesState.COMPLETED)
    master = tmp_path / "files" / "tiny" / "run_master.h5"
    with h5py.File(master.parent / "run_data_000001.h5", "r+") as h5:
        h5["/entry/data/data"].id.write_direct_chunk((1, 0, 0), b"\x00" * 40)  # image 1
    result = run_cli("jfsim", "process", master, "-o", tmp_path / "p", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["images_analysed"] == 2
    assert [s["row"] for s in report["skipped"]] == [1, 2]
    assert "corrupt chunk" in report["skipped"][0]["reason"]
    assert "image 2" in report["skipped"][1]["reason"]
    with h5py.File(tmp_path / "p_process.h5", "r") as h5:
        results = h5[f"{PROCESS_GROUP}/results"]
        assert results["images_skipped"][()] == 2
        assert results["skipped_rows"][()].tolist() == [1, 2]
        assert np.isnan(h5["/entry/profiling/processingTime"][()][[1, 2]]).all()
        assert h5["/entry/MX/nPeaks"][()][[0, 3]].min() > 3
    check = run_cli("jfconform", "check", tmp_path / "p_process.h5", "--fail-on", "error")
    assert check.returncode == 0, check.stdout[-2000:]
