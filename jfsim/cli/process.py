"""``jfsim process``: per-image analysis of a written run into ``<prefix>_process.h5``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from jfsim.cli._progress import progress_printer
from jfsim.cli._statistics import statistics_table

_DEVICES = ("cpu", "gpu", "auto")  # jfsim.analysis.analyse.DEVICES, without importing numba

_EPILOG = """\
examples:
  jfsim process run_master.h5 -o out/run -N 2
      spot finding, azimuthal integration, ROIs and pixel statistics of every image into
      out/run_process.h5, with 2 threads
  jfsim process run_master.h5 -o sub -s 100 -e 199 -t 10 --spot-sigma 4 --max-spots 500
      images 100, 110, ..., 190 (-e is the last image, inclusive)
  jfsim process run_master.h5 -o tuned --settings settings.json
      settings in the broker's vocabulary: {"spot_finding": {...}, "azim_int": {...},
      "roi": {...}, "max_spots": 250, "images": {...}}; options given here override them
  jfsim process run_master.h5 -o again --settings-from out/run_process.h5
      the settings of an earlier run, read back from its NXprocess configuration
  jfsim process run_master.h5 --show-settings
      print the effective settings document (a template for --settings) and exit
  jfsim process run_master.h5 -o big --dask tcp://scheduler:8786
      chunks of images to a Dask cluster ('--dask' alone starts a local one)
  jfsim process stills_master.h5 -o lyso -X ffbidx -C 79.1,79.1,37.9,90,90,90 -S 96
      known-cell indexing of stills (fast-feedback); -S gives the centring and the setting
  jfsim process stills_master.h5 -o denovo -X fft
      de novo indexing (FFT): finds the cell, reports its Bravais lattice
  jfsim process rotation_master.h5 -o rot -R -S 96
      two-pass rotation indexing: index the first 30 images as one wedge (-R=60 for 60),
      then every image against that lattice
  jfsim process rotation_master.h5 -o rot -R --force-rotation-lattice 79.1,0,0,0,79.1,0,0,0,37.9
      skip the first pass: index every image against the lattice given (a, b, c rows, Å)
  jfsim process rot_master.h5 -o lyso -N 2 -R -S 96 -M -P rot
      index the sweep, integrate every image, scale and merge in P4(3)2(1)2 with the
      rotation partiality model: lyso_process.h5 and lyso.mtz, statistics per shell
  jfsim process rot_master.h5 -o lyso -R -S 96 -M --integration-radius 3,5,7 --scaling-output txt
      signal disc of 3 px, background annulus 5-7 px; merged intensities as lyso.hkl
  jfsim process run_master.h5 -o quick -X none
      no indexing (and so no integration): spot finding and the rest only
  jfconform check out/run_process.h5 --truth run_truth.h5 --spot-radius-px 1

exit status: 0 every image analysed, 1 some images skipped (corrupt or missing frames; the
file is written and names them) or -M could not merge (the file is written, the summary says
why), 2 usage error or unusable input (nothing written).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "process",
        help="analyse a run's images (spots, azimuthal integration, ROIs) into _process.h5",
        description=(
            "Like jfjoch_process: read an NXmx run (any layout, geometry from the file), find "
            "spots with Jungfraujoch's rule, integrate azimuthally, measure ROIs and pixel "
            "statistics for every image, and write PREFIX_process.h5: the run's NXmx metadata, "
            "a virtual dataset back to the raw images, the results (Jungfraujoch's layout) and an "
            "NXprocess group with the settings as JSON."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("master", type=Path, metavar="MASTER", help="the run's master file")
    parser.add_argument(
        "-o",
        "--output-prefix",
        default="output",
        metavar="PREFIX",
        help="output prefix: writes PREFIX_process.h5 (default: output)",
    )
    parser.add_argument("-N", "--threads", type=int, default=1, help="worker threads (default 1)")
    parser.add_argument("-s", "--start-image", type=int, metavar="N", help="first image (0)")
    parser.add_argument(
        "-e", "--end-image", type=int, metavar="N", help="last image, inclusive (default: all)"
    )
    parser.add_argument("-t", "--stride", type=int, metavar="N", help="every N-th image (1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    spots = parser.add_argument_group("spot finding (override --settings)")
    spots.add_argument(
        "--spot-sigma", type=float, metavar="X", help="signal_to_noise_threshold (default 3.0)"
    )
    spots.add_argument(
        "--spot-threshold", type=int, metavar="N", help="photon_count_threshold (default 10)"
    )
    spots.add_argument(
        "--spot-high-resolution",
        type=float,
        metavar="A",
        help="high_resolution_limit in Å (default 1.5)",
    )
    spots.add_argument("--max-spots", type=int, metavar="N", help="spots kept per image (250)")
    indexing = parser.add_argument_group("indexing (override --settings)")
    indexing.add_argument(
        "-X",
        "--indexing-algorithm",
        metavar="ALGO",
        help="ffbidx (known cell, needs -C), fft/fftw (de novo), auto (ffbidx with -C, else "
        "fft; default) or none",
    )
    indexing.add_argument(
        "-C",
        "--unit-cell",
        metavar="a,b,c,al,be,ga",
        help="reference unit cell (Å, degrees): what ffbidx searches for, what fft must match",
    )
    indexing.add_argument(
        "-r",
        "--refine",
        metavar="MODE",
        help="geometry refinement: none, orientation or beam_and_lattice (default)",
    )
    indexing.add_argument(
        "-R",
        "--two-pass-rotation",
        nargs="?",
        const=0,
        type=int,
        metavar="N",
        help="two-pass rotation indexing: one lattice from the first N images (default 30), "
        "then every image against it",
    )
    indexing.add_argument(
        "--force-rotation-lattice",
        metavar="9 floats",
        help="the sweep's lattice (a, b, c rows, Å): skips -R's first pass (write "
        "--force-rotation-lattice=-12.3,... when the first number is negative)",
    )
    reflections = parser.add_argument_group(
        "integration, scaling and merging (override --settings)"
    )
    reflections.add_argument(
        "-S",
        "--space-group",
        metavar="SG",
        help="space group, number or name (96 or P43212): the centring of -C, and for "
        "scaling (default: P1 when merging)",
    )
    reflections.add_argument(
        "--integration-radius",
        metavar="R1[,R2,R3]",
        help="signal disc radius and background annulus in pixels (default 3,5,7; one "
        "value: R2 = R1 + 2, R3 = R1 + 4)",
    )
    reflections.add_argument(
        "-M", "--scale-merge", action="store_true", default=None, help="scale and merge"
    )
    reflections.add_argument(
        "-P",
        "--partiality",
        choices=("fixed", "rot", "unity"),
        help="partiality model: fixed (predicted partiality, default), rot (sum the partials "
        "of rotation data; crossings recorded to >= 95%% merged), unity (every observation "
        "full)",
    )
    reflections.add_argument(
        "-A",
        "--anomalous",
        action="store_true",
        default=None,
        help="keep Friedel mates apart (I(+), I(-))",
    )
    reflections.add_argument(
        "--scaling-iterations", type=int, metavar="N", help="scaling cycles (default 3)"
    )
    reflections.add_argument(
        "--scaling-high-resolution",
        type=float,
        metavar="A",
        help="no observation beyond this resolution in Å is scaled or merged (default: none)",
    )
    reflections.add_argument(
        "--min-partiality",
        type=float,
        metavar="X",
        help="drop observations recording less of their reflection (default 0.02)",
    )
    reflections.add_argument(
        "--reject-outliers",
        type=float,
        metavar="N",
        help="drop observations N sigma from their reflection's median (default: off)",
    )
    reflections.add_argument(
        "--scaling-output",
        choices=("mtz", "cif", "txt"),
        help="merged reflection file: PREFIX.mtz (default), PREFIX.cif or PREFIX.hkl",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--settings", type=Path, metavar="FILE.json", help="settings document (see examples)"
    )
    source.add_argument(
        "--settings-from",
        type=Path,
        metavar="OLD_process.h5",
        help="reuse the settings of an earlier jfsim process run",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=_DEVICES,
        help="analysis engine: cpu, gpu (fails without CUDA) or auto (default)",
    )
    parser.add_argument(
        "--dask",
        nargs="?",
        const="local",
        metavar="SCHEDULER_ADDRESS",
        help="run on a Dask distributed cluster (alone: a local cluster of -N workers)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing PREFIX_process.h5"
    )
    parser.add_argument(
        "--show-settings", action="store_true", help="print the effective settings and exit"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from jfsim.analysis.indexing.settings import parse_space_group
    from jfsim.analysis.process_file import settings_from_process_file
    from jfsim.analysis.reflection_settings import parse_integration_radii
    from jfsim.analysis.settings import ProcessSettings, settings_from_file

    if args.settings is not None:
        base = settings_from_file(args.settings)
    elif args.settings_from is not None:
        base = settings_from_process_file(args.settings_from)
    else:
        base = ProcessSettings()
    settings = base.with_overrides(
        spot_sigma=args.spot_sigma,
        spot_threshold=args.spot_threshold,
        spot_high_resolution_A=args.spot_high_resolution,
        max_spots=args.max_spots,
        start=args.start_image,
        end=args.end_image,
        stride=args.stride,
    )
    radii = args.integration_radius
    settings = settings.with_reflection_overrides(
        integration_radii_pxl=None if radii is None else parse_integration_radii(radii),
        space_group_number=None
        if args.space_group is None
        else parse_space_group(args.space_group),
        merge=args.scale_merge,
        partiality_model=args.partiality,
        anomalous=args.anomalous,
        iterations=args.scaling_iterations,
        scaling_high_resolution_A=args.scaling_high_resolution,
        min_partiality=args.min_partiality,
        reject_outliers_sigma=args.reject_outliers,
        output_format=args.scaling_output,
    )
    return _with_indexing(settings, args)


def _with_indexing(settings, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The indexing options (-X -C -r -R --force-rotation-lattice) on top of
    ``settings``."""
    from dataclasses import replace

    from jfsim.analysis.indexing.settings import DEFAULT_ROTATION_IMAGES

    two_pass = args.two_pass_rotation
    if two_pass == 0:
        two_pass = DEFAULT_ROTATION_IMAGES
    indexing = settings.indexing.with_overrides(
        algorithm=args.indexing_algorithm,
        unit_cell=args.unit_cell,
        refinement=args.refine,
        two_pass_images=two_pass,
        rotation_lattice=args.force_rotation_lattice,
    )
    return replace(settings, indexing=indexing)


def run(args: argparse.Namespace) -> int:
    from jfsim.analysis.process import process_run  # numba: imported only when processing

    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="process: %(message)s")
    settings = _settings(args)
    if args.show_settings:
        print(settings.to_json())
        return 0
    summary = process_run(
        args.master,
        args.output_prefix,
        settings,
        threads=args.threads,
        device=args.device,
        dask_scheduler=args.dask,
        overwrite=args.overwrite,
        progress=None if args.json else progress_printer("process"),
    )
    report = summary.as_dict()
    status = 1 if summary.failed else 0
    if args.json:
        print(json.dumps(report, indent=2))
        return status
    rows = {
        k: v
        for k, v in report.items()
        if k not in ("skipped", "notes", "merge_statistics", "indexing") and v is not None
    }
    if summary.indexing is not None:
        rows.update(_indexing_rows(summary.indexing))
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    if summary.merge is not None:
        print()
        print(statistics_table(summary.merge.statistics))
    for skipped in summary.skipped:
        print(f"skipped row {skipped.position}: {skipped.reason}", file=sys.stderr)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    return status


def _indexing_rows(indexing) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The summary table's indexing rows: rate, cell, and the failures by step."""
    rows = {
        "indexing": f"{indexing.algorithm} (refinement {indexing.refinement})",
        "images_indexed": f"{indexing.indexed} of {indexing.images} ({100 * indexing.rate:.1f} %)",
    }
    if indexing.cell is not None:
        cell = " ".join(f"{v:.2f}" for v in indexing.cell)
        rows["indexed_cell"] = f"{indexing.bravais} {cell}"
    if indexing.failures:
        rows["not_indexed"] = ", ".join(f"{n} {step}" for step, n in indexing.failures.items())
    return rows
