"""``jfsim simulate``: render an experiment into a CBOR recording plus its ground truth."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from jfsim.cli._experiment_options import add_experiment_options, experiment_from_options
from jfsim.cli._progress import progress_printer
from jfsim.errors import ConfigError

#: The values of jfsim.sim.render.DEVICES, repeated so that building the parser does not
#: import numba (every jfsim command builds every subcommand's parser).
_DEVICES = ("cpu", "gpu", "auto")

_EPILOG = """\
examples:
  jfsim simulate --preset small-jf1m --images 10 -o out/small
      writes out/small.cbors (start, 10 images, end) and out/small_truth.h5
  jfsim simulate --experiment my.toml --images 100 -o run1 --device auto --seed 3 --json

The recording replays with 'jfsim stream'; the truth file is plain HDF5 (see docs/simulate.md).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="render diffraction images with ground truth into a recording",
        description=(
            "Render diffraction images of an experiment (Bragg spots with known lattice, "
            "background, Poisson noise, detector sentinels) and write them as Jungfraujoch CBOR "
            "messages to PREFIX.cbors, with the ground truth in PREFIX_truth.h5. Image messages "
            "carry the truth's strong spots and lattice, marked analysis_source=jfsim-truth."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add_experiment_options(parser, source)
    parser.add_argument(
        "--images", type=int, metavar="N", help="number of images (default: the experiment's)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="PREFIX", help="output prefix")
    parser.add_argument(
        "--device",
        default="auto",
        choices=_DEVICES,
        help="rendering engine: cpu, gpu (fails without CUDA) or auto (default)",
    )
    parser.add_argument("--seed", type=int, metavar="S", help="override the experiment seed")
    parser.add_argument(
        "--noise-bank",
        type=int,
        default=0,
        metavar="N",
        help="CPU only: reuse N pre-drawn background noise frames (faster; see docs)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jfsim.simulate import write_simulation  # numba: imported only when simulating

    experiment = experiment_from_options(args)
    if args.seed is not None:
        if not 0 <= args.seed < 2**63:
            raise ConfigError(f"--seed: must be within [0, 2^63), got {args.seed}")
        experiment = replace(experiment, seed=args.seed)
    summary = write_simulation(
        experiment,
        args.output,
        n_images=args.images,
        device=args.device,
        noise_bank_frames=args.noise_bank,
        progress=None if args.json else progress_printer("simulate"),
    )
    rows = {
        "recording": str(summary.recording_path),
        "truth": str(summary.truth_path),
        "engine": summary.engine,
        "images": summary.images,
        "reflections": summary.reflections,
        "mean_spots_per_image": round(summary.mean_spots_per_image, 2),
        "seconds": round(summary.seconds, 3),
        "frames_per_s": round(summary.frames_per_s, 2),
        "recording_bytes": summary.recording_bytes,
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return 0
