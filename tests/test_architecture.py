"""The architecture's rules that import-linter cannot state, and the completeness of those it
does state (the contracts are in pyproject.toml; `lint-imports` checks them).

* jfsim.protocol and jfsim.geometry open no files (the contracts forbid I/O modules).
* The judge may use only jfsim's units and geometry: the forbidden list of the
  ``independent-judge`` contract names every other part of jfsim, so a new part of jfsim
  is forbidden to the judge until someone decides otherwise here.
* Every part of jfsim sits in a layer (the layers contract is exhaustive).
* The stream judge and its corpus import nothing of jfsim, and decode with cbor2.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import tomllib

import jfsim

ROOT = Path(__file__).resolve().parent.parent
#: What the judge may import from jfsim.
JUDGE_ALLOWED_FROM_JFSIM = {"jfsim.units", "jfsim.geometry"}


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(contract for contract in contracts if contract["id"] == contract_id)


def _jfsim_parts() -> set[str]:
    return {f"jfsim.{module.name}" for module in pkgutil.iter_modules(jfsim.__path__)}


def test_the_judge_is_forbidden_every_part_of_jfsim_but_units_and_geometry():
    forbidden = set(_contract("independent-judge")["forbidden_modules"])
    assert set(_contract("independent-judge")["source_modules"]) == {"jfconform", "fixtures"}
    missing = _jfsim_parts() - JUDGE_ALLOWED_FROM_JFSIM - forbidden
    assert not missing, f"add {sorted(missing)} to the independent-judge contract"
    assert not forbidden & JUDGE_ALLOWED_FROM_JFSIM


def test_the_judge_does_not_import_jfsims_root_either():
    """A contract cannot forbid ``jfsim`` itself without forbidding units and geometry."""
    graph = grimp.build_graph("jfsim", "jfconform", "fixtures")
    importers = graph.find_modules_that_directly_import("jfsim")
    assert not {m for m in importers if m.split(".")[0] in ("jfconform", "fixtures")}


def test_every_part_of_jfsim_must_sit_in_a_layer():
    layers = _contract("jfsim-layers")
    assert layers["exhaustive"] is True and layers["containers"] == ["jfsim"]


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "jfsim" / "protocol").rglob("*.py"))
    + sorted((ROOT / "jfsim" / "geometry").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_protocol_and_geometry_open_no_files(path: Path):
    source = path.read_text(encoding="utf-8")
    assert "open(" not in source.replace("_open(", ""), f"{path.relative_to(ROOT)} opens files"


def test_the_stream_judge_and_its_corpus_are_forbidden_all_of_jfsim():
    """Stricter than the judge's rule: the stream judge decodes messages itself (cbor2), and
    its corpus is built with cbor2 and h5py, so neither can share a bug with jfsim's codec."""
    contract = _contract("stream-judge-without-jfsim")
    assert contract["forbidden_modules"] == ["jfsim"]
    corpus = {f"fixtures.{path.stem}" for path in (ROOT / "fixtures").glob("stream_*.py")}
    assert corpus and corpus <= set(contract["source_modules"])
    assert {"jfconform.stream", "jfconform.rules.stream"} <= set(contract["source_modules"])


def test_the_stream_judge_decodes_with_cbor2():
    graph = grimp.build_graph("jfconform", include_external_packages=True)
    assert graph.direct_import_exists(importer="jfconform.stream.wire", imported="cbor2")


def test_the_readmes_project_layout_names_every_part_of_jfsim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Project layout") :]
    layout = layout[: layout.index("\n```\n", layout.index("```\njfsim/") + 4)]
    for module in pkgutil.iter_modules(jfsim.__path__):
        entry = f"{module.name}/" if module.ispkg else f"{module.name}.py"
        assert entry in layout, f"README's project layout does not mention jfsim/{entry}"


def test_writing_a_truth_file_loads_neither_the_renderer_nor_numba_at_run_time():
    """The contract reads jfsim's own imports; this also catches a third-party one."""
    probe = "import sys, jfsim.truth; print(sorted({'numba', 'jfsim.sim'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
