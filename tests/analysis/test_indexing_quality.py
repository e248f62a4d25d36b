"""Indexing on the bundled experiments, through the CLI, scored by jfconform against the truth.

Done when (issue "jfsim process 2 of 2"): on ``lysozyme-stills-jf4m`` ``-X ffbidx -C``
indexes ≥ 98 % of the crystal hits and no blank, median misorientation < 0.1°, cell error
< 0.2 %; ``-X fft`` without a cell finds the right (Niggli) cell within 0.5 % on ≥ 80 % of
the hits; on the rotation sweeps ``-R`` finds the cell and the orientation (< 0.05°) and
every image indexes against it. The default run checks those bounds on the first images of
each recording; ``-m acceptance`` on 1000 stills and 360 rotation images.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from jfconform.truth import compare_lattices
from jfsim.truth import read_truth
from tests.analysis.conftest import run_cli, truth_of
from tests.analysis.runs import preset_run

LYSOZYME_CELL = "79.1,79.1,37.9,90,90,90"


@pytest.fixture(scope="module")
def lysozyme_stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8 stills of lysozyme-stills-jf4m: 5 crystal hits and 3 blanks."""
    return preset_run("lysozyme-stills-jf4m", tmp_path_factory.mktemp("lyso_stills"), 8)


def _process(master: Path, prefix: Path, *options: object) -> dict:
    result = run_cli("jfsim", "process", master, "-o", prefix, "-N", "2", "--json", *options)
    assert result.returncode == 0, result.stderr[-3000:]
    summary: dict = json.loads(result.stdout)
    return summary


def _truth_scores(output: Path, master: Path, *thresholds: object) -> dict:
    truth = truth_of(master)
    check = run_cli("jfconform", "check", output, "--truth", truth, "--json", *thresholds)
    report = json.loads(check.stdout)
    scores: dict = report["truth"]["scores"]
    return scores


def _stills_known_cell(master: Path, folder: Path) -> None:
    summary = _process(master, folder / "ffbidx", "-X", "ffbidx", "-C", LYSOZYME_CELL, "-S", "96")
    indexing = summary["indexing"]
    truth = read_truth(truth_of(master))
    hits = truth.n_lattices > 0
    with h5py.File(summary["output"], "r") as h5:
        indexed = h5["/entry/MX/imageIndexed"][()].astype(bool)
        assert h5["/entry/MX/indexing_algorithm"][()].decode() == "FFBIDX"
        assert h5["/entry/MX/imageIndexedMean"][()] == pytest.approx(indexed.mean())
        assert set(h5["/entry/MX/bravaisLattice"][()][indexed].tolist()) == {b"tP"}
        counts = h5["/entry/MX/peakCountIndexed"][()]
        assert counts[indexed].min() >= 10
    assert not (indexed & ~hits).any(), "a blank image indexed"
    assert indexed[hits].mean() >= 0.98
    assert indexing["indexed"] == int(indexed.sum())
    assert indexing["bravais_lattice"] == "tP"
    assert np.allclose(indexing["cell"][:3], (79.1, 79.1, 37.9), rtol=0.002)
    assert sum(indexing["failures"].values()) == int((~indexed).sum())
    scores = _truth_scores(
        Path(summary["output"]),
        master,
        "--max-cell-error",
        "0.002",
        "--max-misorientation-deg",
        "0.1",
    )
    assert scores["indexing_rate"]["value"] >= 0.98
    assert scores["misorientation_deg"]["value"] < 0.1
    assert scores["cell_error"]["value"] < 0.002
    # the lattice goes on to integration: per-image intensities follow the truth's
    assert scores["intensity_cc"]["value"] > 0.9
    print(f"\n{master.name} ffbidx: {indexing}, scores {scores}")


def _stills_de_novo(master: Path, folder: Path) -> None:
    summary = _process(master, folder / "fft", "-X", "fft")
    assert summary["indexing"]["algorithm"] == "fft"
    assert summary["indexing"]["bravais_lattice"] == "tP"
    # right Niggli cell within 0.5 % on >= 80 % of the hits (orientation: a loose bound)
    scores = _truth_scores(
        Path(summary["output"]),
        master,
        "--max-cell-error",
        "0.005",
        "--max-misorientation-deg",
        "1",
        "--min-indexing-rate",
        "0.8",
    )
    assert scores["indexing_rate"]["value"] >= 0.8
    assert scores["indexing_rate"]["passed"] is True
    print(f"\n{master.name} fft: {summary['indexing']}, scores {scores}")


def _rotation(master: Path, folder: Path, first_pass_images: int) -> None:
    summary = _process(master, folder / "rot", f"-R={first_pass_images}")
    indexing = summary["indexing"]
    assert indexing["indexed"] == indexing["images"] == summary["images_analysed"]
    truth = read_truth(truth_of(master))
    true_lattice = np.linalg.inv(truth.ub_matrix[0, 0])  # the sweep's lattice at φ = 0
    found = np.asarray(indexing["rotation_lattice_A"]).reshape(3, 3)
    cell_error, _angle_error, misorientation = compare_lattices(found, true_lattice)
    assert cell_error < 0.002
    assert misorientation < 0.05
    with h5py.File(summary["output"], "r") as h5:
        stored = h5["/entry/MX/rotationLatticeIndexed"][()].reshape(3, 3)
        assert np.allclose(stored, found, atol=1e-3)
        assert h5["/entry/MX/imageIndexed"][()].all()
    scores = _truth_scores(Path(summary["output"]), master, "--max-misorientation-deg", "0.05")
    assert scores["indexing_rate"]["value"] == 1.0
    assert scores["misorientation_deg"]["value"] < 0.05
    assert scores["intensity_cc"]["value"] > 0.9
    print(f"\n{master.name}: sweep misorientation {misorientation:.4f} deg, scores {scores}")
    # the lattice found, forced: no first pass, every image indexed against it
    forced = ",".join(f"{v:.5f}" for v in found.reshape(-1))
    again = _process(master, folder / "forced", "-e", "3", f"--force-rotation-lattice={forced}")
    assert again["indexing"]["rotation_first_pass"] is None
    assert again["indexing"]["indexed"] == again["images_analysed"] == 4
    assert np.allclose(again["indexing"]["rotation_lattice_A"], found.reshape(-1), atol=1e-3)


@pytest.mark.slow
def test_known_cell_stills_index_every_hit_and_no_blank(
    lysozyme_stills: Path, tmp_path: Path
) -> None:
    _stills_known_cell(lysozyme_stills, tmp_path)


@pytest.mark.slow
def test_de_novo_stills_find_the_cell(lysozyme_stills: Path, tmp_path: Path) -> None:
    _stills_de_novo(lysozyme_stills, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["lysozyme-rotation-jf4m", "insulin-rotation-eiger2-4m"])
def test_two_pass_rotation_finds_the_sweep_lattice(preset: str, tmp_path: Path) -> None:
    _rotation(preset_run(preset, tmp_path / "run", 12), tmp_path, 12)


def test_images_that_do_not_index_are_counted_by_step(tiny_stills: Path, tmp_path: Path) -> None:
    """A cell that is not the crystal's: nothing indexes, the summary says where each
    image stopped and what to try; the file is written and the exit status is 0 (no data
    was lost)."""
    result = run_cli(
        "jfsim", "process", tiny_stills, "-o", tmp_path / "wrong", "-X", "ffbidx",
        "-C", "97,97,97,90,90,90",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "images_indexed" in result.stdout and "0 of 3 (0.0 %)" in result.stdout
    assert "not_indexed" in result.stdout and "no_lattice" in result.stdout
    assert "note: no image indexed" in result.stderr and "-X fft" in result.stderr
    with h5py.File(tmp_path / "wrong_process.h5", "r") as h5:
        assert not h5["/entry/MX/imageIndexed"][()].any()
        results = h5["/entry/jfsim_process/results/indexing"]
        assert results["images_indexed"][()] == 0
        assert sum(results[name][()] for name in results if name.startswith("failed_")) == 3
    sparse = run_cli(
        "jfsim", "process", tiny_stills, "-o", tmp_path / "sparse", "-X", "fft",
        "--spot-threshold", "400", "--json",
    )  # fmt: skip
    assert sparse.returncode == 0, sparse.stderr
    summary = json.loads(sparse.stdout)
    assert summary["indexing"]["failures"] == {"too_few_spots": 3}
    assert any("--spot-sigma" in note for note in summary["notes"])


def test_bad_indexing_options_are_one_line_and_exit_2(
    tiny_stills: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jfsim.cli import main

    def refused(*args: object) -> str:
        status = main(["process", str(tiny_stills), "-o", str(tmp_path / "x"), *map(str, args)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1, lines
        assert lines[0].startswith("jfsim process: error: ")
        return lines[0]

    assert "needs the unit cell" in refused("-X", "ffbidx")
    assert "six numbers" in refused("-X", "ffbidx", "-C", "79,79,38")
    assert "not a space group" in refused("-S", "P99x")
    assert "not a cell of space group" in refused("-C", LYSOZYME_CELL, "-S", "199")
    assert "-X 'dials'" in refused("-X", "dials")
    assert "-r 'pixelrefine'" in refused("-r", "pixelrefine")
    assert "nine numbers" in refused("-R", "--force-rotation-lattice", "1,2,3")
    assert not list(tmp_path.glob("x_process.h5*"))


@pytest.mark.acceptance
def test_known_cell_and_de_novo_on_1000_stills(tmp_path: Path) -> None:
    master = preset_run("lysozyme-stills-jf4m", tmp_path / "run", 1000)
    _stills_known_cell(master, tmp_path)
    _stills_de_novo(master, tmp_path)


@pytest.mark.acceptance
@pytest.mark.parametrize("preset", ["lysozyme-rotation-jf4m", "insulin-rotation-eiger2-4m"])
def test_two_pass_rotation_on_360_images(preset: str, tmp_path: Path) -> None:
    _rotation(preset_run(preset, tmp_path / "run", 360), tmp_path, 30)
