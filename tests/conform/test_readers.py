"""Oracle: DIALS' nxmx reader loads the clean runs, and fails where jfconform says it will."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures.broken import write_broken

nxmx = pytest.importorskip("nxmx", reason="DIALS nxmx reader (test dependency) not installed")


@pytest.mark.parametrize("layout", ["legacy", "vds", "integrated"])
def test_dials_nxmx_reads_the_clean_runs(clean_runs: dict[str, Path], layout: str) -> None:
    with h5py.File(clean_runs[layout], "r") as h5:
        entry = nxmx.NXmx(h5).entries[0]
        detector = entry.instruments[0].detectors[0]
        module = detector.modules[0]
        assert entry.definition == "NXmx"
        assert entry.instruments[0].beams[0].incident_wavelength.to("angstrom").magnitude == 1.0
        assert detector.sensor_material == "Si"
        assert list(module.data_size) == [40, 48]
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction)
        assert [axis.path.rsplit("/", 1)[-1] for axis in chain] == [
            "fast_pixel_direction", "module_offset", "rot3", "rot2", "rot1", "translation"
        ]  # fmt: skip
        assert np.allclose(module.fast_pixel_direction.vector, [-1, 0, 0])
        assert entry.samples[0].depends_on.path == "/entry/sample/transformations/omega"


def test_dials_nxmx_sees_no_entry_when_definition_is_wrong(tmp_path: Path) -> None:
    with h5py.File(write_broken(tmp_path, "NXMX-001"), "r") as h5:
        assert nxmx.NXmx(h5).entries == []


def test_dials_nxmx_fails_on_the_units_rd_dials_001_flags(tmp_path: Path) -> None:
    with h5py.File(write_broken(tmp_path, "NXG-006"), "r") as h5:  # units 'Angstrom'
        beam = nxmx.NXmx(h5).entries[0].instruments[0].beams[0]
        with pytest.raises(Exception, match="Angstrom"):
            _ = beam.incident_wavelength
