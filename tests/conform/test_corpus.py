"""The broken corpus and the clean runs: rule-ID sets, never wording."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures.broken import BROKEN, EXEMPT_FROM_CORPUS, write_broken
from fixtures.clean import RunSpec, write_run
from jfconform.engine import CheckOptions, check_file
from jfconform.model import Severity
from jfconform.registry import all_rules


def _ids(path: Path, minimum: Severity, options: CheckOptions | None = None) -> set[str]:
    return {f.rule for f in check_file(path, options).findings if f.severity >= minimum}


@pytest.mark.parametrize("rule_id", sorted(BROKEN))
def test_broken_fixture_triggers_exactly_its_own_rule(rule_id: str, tmp_path: Path) -> None:
    """Its own rule fires, and nothing else reaches warning or above (infos may come along)."""
    target = write_broken(tmp_path, rule_id)
    findings = check_file(target).findings
    fired = {f.rule for f in findings}
    serious = {f.rule for f in findings if f.severity >= Severity.WARNING}
    assert rule_id in fired
    assert serious <= {rule_id}, [str(f) for f in findings if f.rule in serious - {rule_id}]


#: The notes (infos) a clean run gets, each a true statement about a deliberate choice of
#: the Jungfraujoch layout (upper-case names, bare time-zone offset, int16 sentinels, ...).
CLEAN_NOTES = {
    "legacy": {"CXI-010", "NXG-005", "NXMX-012", "RD-CFL-003", "RD-NEGGIA-004"},
    "vds": {"NXG-005", "NXMX-012", "NXR-004", "RD-CFL-003", "RD-NEGGIA-003", "RD-NEGGIA-004"},
    "integrated": {"NXG-005", "NXMX-012", "NXR-004", "RD-CFL-003", "RD-NEGGIA-004"},
}


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_clean_run_has_no_errors_no_warnings_and_only_the_documented_notes(
    clean_runs: dict[str, Path], layout: str
) -> None:
    assert _ids(clean_runs[layout], Severity.WARNING) == set()
    assert _ids(clean_runs[layout], Severity.INFO) == CLEAN_NOTES[layout]  # no JF-026


def test_clean_data_file_checked_alone_is_clean(clean_runs: dict[str, Path]) -> None:
    data_file = clean_runs["vds"].with_name("clean_data_000001.h5")
    report = check_file(data_file)
    assert report.role == "data"
    assert {f.rule for f in report.findings if f.severity >= Severity.WARNING} == set()


def test_every_error_rule_has_a_broken_fixture() -> None:
    error_rules = {r.id for r in all_rules() if r.severity == Severity.ERROR}
    missing = error_rules - set(BROKEN) - set(EXEMPT_FROM_CORPUS)
    assert not missing, f"E rules without a broken fixture: {sorted(missing)}"


def test_corpus_keys_and_exemptions_name_registered_rules() -> None:
    registered = {r.id for r in all_rules()}
    assert set(BROKEN) <= registered
    assert set(EXEMPT_FROM_CORPUS) <= registered
    assert not set(BROKEN) & set(EXEMPT_FROM_CORPUS)


def test_profile_raises_reader_rules_to_errors(clean_runs: dict[str, Path]) -> None:
    vds = clean_runs["vds"]
    assert "RD-NEGGIA-003" not in _ids(vds, Severity.ERROR)
    assert "RD-NEGGIA-003" in _ids(vds, Severity.ERROR, CheckOptions(profiles=("neggia",)))
    assert _ids(vds, Severity.ERROR, CheckOptions(profiles=("dials",))) == set()


def test_select_and_ignore_match_id_prefixes(tmp_path: Path) -> None:
    target = write_broken(tmp_path, "NXT-002")
    assert _ids(target, Severity.ERROR, CheckOptions(select=("NXT",))) == {"NXT-002"}
    assert _ids(target, Severity.ERROR, CheckOptions(select=("NXMX",))) == set()
    assert _ids(target, Severity.ERROR, CheckOptions(ignore=("NXT-00",))) == set()


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        CheckOptions(profiles=("xds",))


def test_integer_beam_centre_is_flagged(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r+") as h5:
        del h5["/entry/instrument/detector/beam_center_x"]
        h5["/entry/instrument/detector"].create_dataset("beam_center_x", data=np.int32(24))
        h5["/entry/instrument/detector/beam_center_x"].attrs["units"] = "pixel"
    assert _ids(master, Severity.WARNING) == {"NXMX-024"}


def test_data_file_alone_gets_the_cxi_rules(clean_runs: dict[str, Path], tmp_path: Path) -> None:
    source = clean_runs["vds"].with_name("clean_data_000001.h5")
    data_file = tmp_path / source.name
    data_file.write_bytes(source.read_bytes())
    with h5py.File(data_file, "r+") as h5:
        h5["/entry/MX/nPeaks"][0] = -3
    assert _ids(data_file, Severity.ERROR) == {"CXI-005"}


def test_vds_with_unmapped_frames_is_h5_006(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec(layout="vds"))
    with h5py.File(master, "r+") as h5:
        del h5["/entry/instrument/detector/data"], h5["/entry/data/data"]
        layout = h5py.VirtualLayout((4, 40, 48), np.int16)
        layout[0:2] = h5py.VirtualSource("clean_data_000001.h5", "/entry/data/data", (2, 40, 48))
        data = h5["/entry/data"].create_virtual_dataset("data", layout, fillvalue=-32768)
        data.attrs["image_nr_low"], data.attrs["image_nr_high"] = 1, 4
        h5["/entry/instrument/detector/data"] = data
    assert _ids(master, Severity.WARNING) == {"H5-006"}


def test_strided_vds_mapping_is_legal(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec(layout="vds"))
    with h5py.File(master, "r+") as h5:
        del h5["/entry/instrument/detector/data"], h5["/entry/data/data"]
        layout = h5py.VirtualLayout((4, 40, 48), np.int16)
        for index, name in enumerate(("clean_data_000001.h5", "clean_data_000002.h5")):
            layout[index::2] = h5py.VirtualSource(name, "/entry/data/data", (2, 40, 48))
        data = h5["/entry/data"].create_virtual_dataset("data", layout, fillvalue=-32768)
        data.attrs["image_nr_low"], data.attrs["image_nr_high"] = 1, 4
        h5["/entry/instrument/detector/data"] = data
    assert _ids(master, Severity.WARNING) == set()


def test_each_profile_raises_only_its_reader(tmp_path: Path) -> None:
    target = write_broken(tmp_path, "RD-CFL-002")
    assert _ids(target, Severity.ERROR) == set()
    assert _ids(target, Severity.ERROR, CheckOptions(profiles=("crystfel",))) == {"RD-CFL-002"}
    assert _ids(target, Severity.ERROR, CheckOptions(profiles=("durin",))) == set()


def test_beam_centre_against_the_geometry_chain(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())
    assert "NXMX-034" not in _ids(master, Severity.INFO)
    with h5py.File(master, "r+") as h5:
        h5["/entry/instrument/detector/beam_center_x"][()] = 30.0
    assert "NXMX-034" in _ids(master, Severity.INFO)


def test_legacy_master_signalling_data_through_its_links_is_a_warning(tmp_path: Path) -> None:
    """@signal = 'data' beside data_NNNNNN links: nxvalidate and every reader accept it, so a
    warning (with the fix), not an error; a name matching nothing else stays an error."""
    master = write_run(tmp_path / "legacy", RunSpec(layout="legacy"))
    with h5py.File(master, "r+") as h5:
        h5["/entry/data"].attrs["signal"] = "data"
    findings = [f for f in check_file(master).findings if f.rule == "NXG-011"]
    assert [(f.severity, f.path) for f in findings] == [(Severity.WARNING, "/entry/data")]
    assert "data_000001" in findings[0].hint
    vds = write_run(tmp_path / "vds", RunSpec(layout="vds"))
    with h5py.File(vds, "r+") as h5:
        h5["/entry/data"].attrs["signal"] = "data_000001"
    assert _ids(vds, Severity.ERROR) == {"NXG-011"}
