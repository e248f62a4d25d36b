"""The ``jfsim`` command: a thin dispatcher over one module per subcommand.

Each module in this package defines ``register(subparsers)`` (adds its parser and sets
``func``) and a ``run(args) -> int``. Modules are discovered, so adding a subcommand never
edits this file. Library errors (``JfsimError``) become one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from jfsim import __version__
from jfsim.cli._parser import OneLineErrorParser, parse_command_line
from jfsim.errors import JfsimError

EXIT_OK = 0
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="jfsim",
        description=(
            "A synthetic JUNGFRAU/EIGER detector: render diffraction images with known "
            "lattices, stream them as Jungfraujoch CBOR over ZeroMQ, write NXmx files."
        ),
        epilog="Run 'jfsim COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"jfsim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_command_line(parser, argv, "jfsim")
    except SystemExit as stop:  # usage errors, --help and --version (exit 2 or 0)
        return int(stop.code or 0)
    try:
        return int(args.func(args))
    except JfsimError as error:
        print(f"jfsim {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jfsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
