"""``jfsim presets``: list the bundled experiments and detectors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jfsim.detectors import DETECTOR_PRESETS
from jfsim.experiment import (
    experiment_preset,
    experiment_preset_names,
    experiment_preset_summary,
    experiment_to_dict,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "presets",
        help="list the bundled experiment and detector presets",
        description="List the bundled experiments (--preset NAME of simulate/stream) "
        "and detectors ([detector] preset = NAME in an experiment file).",
        epilog="Example: jfsim presets --show small-jf1m > my_experiment.json",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument(
        "--show", metavar="NAME", help="print one experiment preset in full, as JSON (a template)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.show:
        print(json.dumps(experiment_to_dict(experiment_preset(args.show)), indent=2))
        return 0
    experiments = [
        {"name": name, "summary": experiment_preset_summary(name)}
        for name in experiment_preset_names()
    ]
    detectors: list[dict[str, Any]] = [
        {
            "name": d.name,
            "description": d.description,
            "width_pxl": d.width_pxl,
            "height_pxl": d.height_pxl,
            "modules": len(d.modules),
            "image_dtype": d.image_dtype.name,
        }
        for d in DETECTOR_PRESETS.values()
    ]
    if args.json:
        print(json.dumps({"experiments": experiments, "detectors": detectors}, indent=2))
        return 0
    print("Experiments (jfsim simulate/stream --preset NAME):")
    width = max(len(e["name"]) for e in experiments)
    for entry in experiments:
        print(f"  {entry['name']:<{width}}  {entry['summary']}")
    print("\nDetectors ([detector] preset = NAME):")
    for d in detectors:
        size = f"{d['width_pxl']} x {d['height_pxl']} px"
        modules = f"{d['modules']} module{'s' if d['modules'] > 1 else ''}"
        print(
            f"  {d['name']:<12}  {size:<15} {modules:<10}  {d['image_dtype']:<6}  "
            f"{d['description']}"
        )
    return 0
