"""The argument parser of every ``jfsim`` command: usage errors in one line.

argparse prints the whole usage block before a usage error, and an unknown word after a
subcommand is blamed on ``jfsim`` itself. Here the error is one line that names the
command and points at its ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` (and its subparsers) whose usage errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def parse_command_line(
    parser: argparse.ArgumentParser, argv: list[str] | None, program: str
) -> argparse.Namespace:
    """Parse ``argv``; words nobody recognises are blamed on the subcommand they follow."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = f"{program} {args.command}"
        sys.stderr.write(
            f"{command}: error: unrecognized arguments: {' '.join(unknown)} "
            f"(see '{command} --help')\n"
        )
        sys.exit(EXIT_USAGE)
    return args
