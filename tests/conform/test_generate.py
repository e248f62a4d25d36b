"""The fixture generator's command line writes the set and refuses a used folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import fixtures.generate as generate_module
from fixtures.broken import BROKEN
from fixtures.stream_broken import STREAM_BROKEN


def test_generate_writes_fixtures_and_refuses_a_full_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    subset = {rule_id: BROKEN[rule_id] for rule_id in ("NXG-001", "H5-007")}
    monkeypatch.setattr(generate_module, "BROKEN", subset)  # the full corpus is tested elsewhere
    stream_subset = {rule_id: STREAM_BROKEN[rule_id] for rule_id in ("STR-007", "STR-027")}
    monkeypatch.setattr(generate_module, "STREAM_BROKEN", stream_subset)
    assert generate_module.main([str(tmp_path / "out")]) == 0
    assert "10 fixtures written" in capsys.readouterr().out  # the timed STR-027 has no file
    assert (tmp_path / "out" / "clean" / "vds" / "clean_data_000002.h5").is_file()
    assert (tmp_path / "out" / "broken" / "H5-007" / "clean_master.h5").is_file()
    assert (tmp_path / "out" / "stream" / "broken" / "STR-007_0.cbors").is_file()
    assert generate_module.main([str(tmp_path / "out")]) == 2
