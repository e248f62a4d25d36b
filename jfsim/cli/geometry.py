"""``jfsim geometry --crystfel``: write the CrystFEL geometry file of an experiment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import h5py

from jfsim.cli._summary import print_summary
from jfsim.crystfel.geometry import MASK_FILE_DATASET, GeometryTarget, crystfel_geometry
from jfsim.errors import ConfigError
from jfsim.experiment import Experiment, experiment_preset, experiment_preset_names, load_experiment

_EPILOG = """\
examples:
  jfsim geometry --crystfel lysozyme-stills-jf4m -o run.geom
      panels and keys for 'jfsim stream --format crystfel --preset lysozyme-stills-jf4m';
      then: indexamajig --zmq-input=tcp://127.0.0.1:5002 --zmq-request=next -g run.geom ...
  jfsim geometry --crystfel my_experiment.toml --target hdf5 -o files.geom
      for the NXmx files 'jfsim write' makes of that experiment (indexamajig -i files.lst)
  jfsim geometry --crystfel lysozyme-stills-jf4m -o run.geom --mask-file run_mask.h5
      also writes the detector's pixel mask and makes the geometry use it

One panel per module: the gaps between modules belong to no panel. Error pixels are
flagged (flag_lessthan / flag_morethan). Files are written under a temporary name and
renamed when complete; an existing file is replaced only with --overwrite.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "geometry",
        help="write a CrystFEL geometry file for a stream or for jfsim's files",
        description="Write the CrystFEL geometry file that matches an experiment's detector "
        "and position: one panel per JUNGFRAU/EIGER module, the photon energy, camera "
        "length, peak list and bad pixels, for 'jfsim stream --format crystfel' (target "
        "stream) or for the files of 'jfsim write' (target hdf5).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--crystfel",
        required=True,
        metavar="EXPERIMENT_OR_PRESET",
        help="a bundled experiment (jfsim presets) or an experiment file (.toml/.json)",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE.geom", help="file to write"
    )
    parser.add_argument(
        "--target",
        choices=[target.value for target in GeometryTarget],
        default=GeometryTarget.STREAM.value,
        help="stream (default): MessagePack frames of 'jfsim stream --format crystfel'; "
        "hdf5: NXmx files of 'jfsim write'",
    )
    parser.add_argument(
        "--mask-file",
        type=Path,
        metavar="FILE.h5",
        help="stream target: also write the pixel mask to FILE.h5 and use it (CrystFEL "
        "reads masks from files only); the geometry names FILE.h5 as given",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def experiment_from_name_or_file(name_or_path: str) -> Experiment:
    """A bundled experiment by name, or an experiment file by path."""
    if name_or_path in experiment_preset_names():
        return experiment_preset(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") or path.exists():
        return load_experiment(path)
    raise ConfigError(
        f"{name_or_path!r} is neither a bundled experiment ({', '.join(experiment_preset_names())})"
        " nor an experiment file (.toml/.json)"
    )


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; choose another name or add --overwrite")


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write ({error.strerror})") from error


def _write_mask(path: Path, experiment: Experiment) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as h5:
            mask = h5.create_dataset(
                MASK_FILE_DATASET, data=experiment.detector.pixel_mask(), compression="gzip"
            )
            mask.attrs["description"] = "NeXus pixel_mask bits; bit 31 = virtual pixel (valid)"
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write the mask file ({error})") from error


def run(args: argparse.Namespace) -> int:
    experiment = experiment_from_name_or_file(args.crystfel)
    target = GeometryTarget(args.target)
    if args.mask_file is not None and target is not GeometryTarget.STREAM:
        raise ConfigError("--mask-file is for --target stream; hdf5 files carry their own mask")
    outputs = [args.output] + ([args.mask_file] if args.mask_file is not None else [])
    for path in outputs:
        _refuse_existing(path, args.overwrite)
    text = crystfel_geometry(
        experiment, target, mask_file=None if args.mask_file is None else str(args.mask_file)
    )
    if args.mask_file is not None:
        _write_mask(args.mask_file, experiment)
    _write_text(args.output, text)
    written = {
        "geometry": str(args.output),
        "mask_file": None if args.mask_file is None else str(args.mask_file),
        "experiment": experiment.name,
        "detector": experiment.detector.name,
        "panels": len(experiment.detector.modules),
        "target": target.value,
    }
    rows = {key: "-" if value is None else value for key, value in written.items()}
    print_summary(rows, written, as_json=args.json)
    return 0
