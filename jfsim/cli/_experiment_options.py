"""The options that choose an experiment, shared by ``simulate`` and ``stream``."""

from __future__ import annotations

import argparse

from jfsim.experiment import (
    Experiment,
    experiment_preset,
    load_broker_settings,
    load_experiment,
)


def add_experiment_options(
    parser: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup
) -> None:
    """``--preset``, ``--experiment`` and ``--broker-settings`` (+ ``--detector``)."""
    source.add_argument("--preset", metavar="NAME", help="a bundled experiment (jfsim presets)")
    source.add_argument(
        "--experiment", metavar="FILE", help="an experiment file (.toml or .json, see README)"
    )
    source.add_argument(
        "--broker-settings",
        metavar="FILE.json",
        help="the JSON body a user sends to jfjoch_broker's /start (DatasetSettings), "
        "simulated on --detector",
    )
    parser.add_argument(
        "--detector",
        metavar="NAME",
        default="JF4M",
        help="detector preset for --broker-settings (default JF4M; see jfsim presets)",
    )


def experiment_from_options(args: argparse.Namespace) -> Experiment:
    """The experiment the options name (exactly one of them is set)."""
    if args.preset:
        return experiment_preset(args.preset)
    if args.broker_settings:
        return load_broker_settings(args.broker_settings, detector=args.detector)
    return load_experiment(args.experiment)
