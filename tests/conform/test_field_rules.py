"""Rules as data: the generic field judge, the rule descriptions, and the NXDL tables that
ci/generate_nxdl_tables.py writes from the NeXus definitions."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures.clean import DETECTOR as DETECTOR_PATH
from fixtures.clean import RunSpec, write_run
from jfconform.context import FileContext
from jfconform.engine import check_file
from jfconform.field_rules import (
    ANY,
    BEAM,
    DETECTOR,
    FLOAT,
    FRAMES,
    IMAGE,
    MORE,
    NXDL,
    REQUIRED,
    Field,
    Units,
)
from jfconform.model import Severity
from jfconform.nxdl_tables import NXDL_COMMIT, NXMX_FIELDS
from jfconform.registry import RegistryError, describe
from jfconform.units import LENGTH

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "ci" / "generate_nxdl_tables.py"


def _judged(master: Path, check: Field) -> list[tuple[str, str]]:
    with h5py.File(master, "r") as h5:
        context = FileContext(master, h5)
        try:
            return [(issue.path, issue.message) for issue in check.judge(context)]
        finally:
            context.close()


def test_nxdl_aspects_are_read_from_the_definitions() -> None:
    wavelength = Field(BEAM, "incident_wavelength", need=NXDL, kind=NXDL, units=NXDL)
    assert (wavelength.need, wavelength.kind) == (REQUIRED, FLOAT)
    assert wavelength.units == Units((LENGTH,))
    with pytest.raises(KeyError, match="NXmx declares no field 'wavelength'"):
        Field(BEAM, "wavelength", need=NXDL)
    assert len(NXDL_COMMIT) == 40


@pytest.mark.parametrize(
    ("shape", "patterns", "fits"),
    [
        ((4, 40, 48), ((FRAMES, IMAGE),), True),
        ((3, 40, 48), ((FRAMES, IMAGE),), False),  # 4 frames in the run
        ((40, 48), ((IMAGE,), (ANY, IMAGE)), True),
        ((2, 40, 48), ((IMAGE,), (ANY, IMAGE)), True),
        ((2, 2, 40, 48), ((IMAGE,), (ANY, IMAGE)), False),
        ((1, 3, 3), ((MORE, 3, 3),), True),
        ((3,), ((MORE, 3, 3),), False),
        ((4, 8), ((FRAMES, MORE),), True),
        ((), ((), (FRAMES, MORE)), True),
        ((5,), ((FRAMES, MORE),), False),
    ],
)
def test_shape_patterns(tmp_path: Path, shape: tuple, patterns: tuple, fits: bool) -> None:
    master = write_run(tmp_path, RunSpec(n_images=4))
    with h5py.File(master, "r+") as h5:
        h5[DETECTOR_PATH].create_dataset("probe", data=np.zeros(shape))
    found = _judged(master, Field(DETECTOR, "probe", shapes=patterns))
    assert (found == []) == fits, found


def test_one_finding_per_field_listing_every_problem(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r+") as h5:
        del h5["/entry/instrument/beam/incident_wavelength"]
        h5["/entry/instrument/beam"].create_dataset("incident_wavelength", data=np.int32([1, 2]))
    check = Field(BEAM, "incident_wavelength", need=NXDL, kind=NXDL, units=NXDL)
    ((path, message),) = _judged(master, check)
    assert path == "/entry/instrument/beam/incident_wavelength"
    assert message == "incident_wavelength: is int32, expected floating point; has no units"
    with h5py.File(master, "r+") as h5:
        del h5["/entry/instrument/beam/incident_wavelength"]
    assert _judged(master, check) == [(path, "required field incident_wavelength is missing")]


def test_a_missing_group_is_reported_in_its_parent(tmp_path: Path) -> None:
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r+") as h5:
        h5["/entry/instrument/beam"].attrs["NX_class"] = "NXcollection"
    assert _judged(master, Field(BEAM, need=NXDL)) == [
        ("/entry/instrument", "the NXinstrument has no NXbeam group")
    ]


def test_rule_descriptions_need_a_summary_a_spec_and_a_hint() -> None:
    text = """Beam present

    Why it matters, in a paragraph of its own.

    Spec: NXmx NXinstrument/NXbeam
    Hint: add the beam group,
        with NX_class='NXbeam'
    """
    assert describe("X-001", text) == (
        "Beam present",
        "NXmx NXinstrument/NXbeam",
        "add the beam group, with NX_class='NXbeam'",
    )
    for broken in ("Beam present", "Beam present\n\nSpec: somewhere", "\n\nHint: x\nSpec: y"):
        with pytest.raises(RegistryError, match="X-001"):
            describe("X-001", broken)


NXMX = """<?xml version="1.0" encoding="UTF-8"?>
<definition name="NXmx" type="group" category="application"
    xmlns="http://definition.nexusformat.org/nxdl/3.1">
  <group type="NXentry">
    <field name="start_time" type="NX_DATE_TIME"/>
    <field name="title" minOccurs="0"/>
    <group type="NXinstrument">
      <group type="NXbeam" recommended="true">
        <field name="incident_wavelength" type="NX_FLOAT" units="NX_WAVELENGTH"/>
        <field name="old_name" type="NX_FLOAT" minOccurs="0" deprecated="use new_name"/>
        <field name="gone" minOccurs="0" maxOccurs="0"/>
        <field name="profile" optional="true">
          <enumeration><item value="Gaussian"/><item value="Airy"/></enumeration>
        </field>
        <field name="size" type="NX_FLOAT" recommended="true">
          <dimensions rank="1"><dim index="1" value="2"/></dimensions>
        </field>
      </group>
    </group>
  </group>
</definition>
"""


def _base_class(name: str, fields: str = "") -> str:
    return (
        f'<?xml version="1.0"?><definition name="{name}" type="group" category="base" '
        f'xmlns="http://definition.nexusformat.org/nxdl/3.1">{fields}</definition>'
    )


def test_the_generator_reads_nxdl_as_the_nexus_manual_does(tmp_path: Path) -> None:
    """Application definitions require what they do not mark optional; base classes do the
    opposite; deprecated and forbidden (maxOccurs 0) fields are marked; output is Python."""
    definitions = tmp_path / "definitions"
    for folder in ("applications", "base_classes", "contributed_definitions"):
        (definitions / folder).mkdir(parents=True)
    (definitions / "NXDL_VERSION").write_text("v9999.01\n")
    (definitions / "applications" / "NXmx.nxdl.xml").write_text(NXMX)
    detector = '<field name="x_pixel_size" type="NX_FLOAT" units="NX_LENGTH"/>'
    reflections = '<field name="h" type="NX_NUMBER" minOccurs="1"/><field name="lp"/>'
    for name, fields in (("NXdetector", detector), ("NXreflections", reflections)):
        path = definitions / "base_classes" / f"{name}.nxdl.xml"
        path.write_text(_base_class(name, fields))
    (definitions / "contributed_definitions" / "NXfuture.nxdl.xml").write_text(
        _base_class("NXfuture")
    )
    output = tmp_path / "nxdl_tables.py"
    done = subprocess.run(
        [sys.executable, str(GENERATOR), str(definitions), "-o", str(output), "--commit", "0" * 40],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("generated_tables", output)
    assert spec is not None and spec.loader is not None
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    assert tables.NXDL_RELEASE == "v9999.01" and tables.NXDL_COMMIT == "0" * 40
    assert tables.NXMX_GROUPS["NXentry/NXinstrument/NXbeam"] == "recommended"
    entry = tables.NXMX_FIELDS["NXentry"]
    assert (entry["start_time"].need, entry["title"].need, entry["title"].type) == (
        "required",
        "optional",
        "NX_CHAR",
    )
    beam = tables.NXMX_FIELDS["NXentry/NXinstrument/NXbeam"]
    assert beam["incident_wavelength"] == ("NX_FLOAT", "NX_WAVELENGTH", "required", None, False, ())
    assert beam["old_name"].deprecated and beam["gone"].deprecated
    assert beam["profile"].enumeration == ("Gaussian", "Airy")
    assert (beam["size"].need, beam["size"].rank) == ("recommended", 1)
    assert tables.NXREFLECTIONS_FIELDS["h"].need == "required"
    assert tables.NXREFLECTIONS_FIELDS["lp"].need == "optional"  # a base class's default
    assert tables.BASE_CLASSES == {"NXdetector", "NXreflections"}
    assert tables.CONTRIBUTED_BASE_CLASSES == {"NXfuture"}
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout


def test_the_committed_tables_hold_what_the_rules_rely_on() -> None:
    detector = NXMX_FIELDS["NXentry/NXinstrument/NXdetector"]
    assert detector["sensor_material"].need == "required"
    assert detector["flatfield_error"].deprecated
    assert {n for n, f in detector.items() if f.need == "recommended"} == {
        "data",
        "description",
        "distance",
        "distance_derived",
        "count_time",
        "beam_center_x",
        "beam_center_y",
        "pixel_mask",
        "bit_depth_readout",
    }


@pytest.mark.parametrize(
    ("path", "value", "rule", "severity"),
    [
        ("/entry/instrument/beam/incident_wavelength", 0.0, "NXMX-028", Severity.ERROR),
        ("/entry/instrument/beam/incident_wavelength", float("nan"), "NXMX-028", Severity.ERROR),
        ("/entry/instrument/beam/incident_wavelength", -1.0, "NXMX-028", Severity.ERROR),
        ("/entry/instrument/detector/sensor_thickness", -1.0, "NXMX-022", Severity.ERROR),
        ("/entry/instrument/detector/count_time", -1.0, "NXMX-024", Severity.WARNING),
        ("/entry/instrument/detector/x_pixel_size", float("nan"), "NXMX-024", Severity.WARNING),
    ],
)
def test_impossible_physical_values_are_findings(
    tmp_path: Path, path: str, value: float, rule: str, severity: Severity
) -> None:
    """Outside review: a wavelength of 0, NaN or -1 Å, a negative sensor thickness or
    count time passed with no finding at all."""
    master = write_run(tmp_path, RunSpec())
    with h5py.File(master, "r+") as h5:
        h5[path][()] = value
    found = [f for f in check_file(master).findings if f.rule == rule]
    assert [f.severity for f in found] == [severity], found
    assert "must be finite and > 0" in found[0].message
