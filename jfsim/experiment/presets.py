"""The bundled experiments (``jfsim/data/presets/*.toml``), listed by ``jfsim presets``.

To add one, drop a TOML file there whose first line is a ``#`` comment describing it. The
detector presets (JF4M, EIGER2_4M, …) are in ``jfsim.detectors``.
"""

from __future__ import annotations

from importlib import resources

import tomllib

from jfsim.errors import ConfigError
from jfsim.experiment.loading import experiment_from_dict
from jfsim.experiment.model import Experiment

__all__ = ["experiment_preset", "experiment_preset_names", "experiment_preset_summary"]


def _preset_text(name: str) -> str:
    return (resources.files("jfsim") / "data" / "presets" / f"{name}.toml").read_text(
        encoding="utf-8"
    )


def experiment_preset_names() -> list[str]:
    """Names of the bundled experiment presets (``jfsim presets`` lists them)."""
    folder = resources.files("jfsim") / "data" / "presets"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def experiment_preset(name: str) -> Experiment:
    """A bundled experiment by name (see ``jfsim presets``)."""
    names = experiment_preset_names()
    if name not in names:
        raise ConfigError(
            f"preset {name!r} is not known; choose one of {', '.join(names)} (see 'jfsim presets')"
        )
    return experiment_from_dict(tomllib.loads(_preset_text(name)))


def experiment_preset_summary(name: str) -> str:
    """The one-line description a preset file carries in its leading comment."""
    content = _preset_text(name)
    first = content.splitlines()[0] if content else ""
    return first.lstrip("# ").strip()
