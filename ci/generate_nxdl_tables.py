#!/usr/bin/env python3
"""Write jfconform/nxdl_tables.py from a checkout of nexusformat/definitions.

The judge's tables of NeXus facts (which NXmx fields are required or recommended, their
types, units categories, ranks and enumerations; the NXreflections columns; the names of the
base classes) are generated here instead of being kept by hand, and the result is committed
so that a change of the NeXus definitions shows up as a reviewable diff:

    git clone https://github.com/nexusformat/definitions /tmp/definitions
    python ci/generate_nxdl_tables.py /tmp/definitions -o jfconform/nxdl_tables.py
    git diff jfconform/nxdl_tables.py       # review, then run the tests

Requiredness follows the NeXus manual: in an application definition a field or group is
required unless it says ``optional="true"``, ``recommended="true"`` or ``minOccurs="0"``;
in a base class it is optional unless ``minOccurs`` is at least 1 or ``required="true"``.
A field with ``maxOccurs="0"`` (NXmx's ``flatfield_error``) is forbidden, which we record
as deprecated. Fields without a type are ``NX_CHAR``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

NS = {"nx": "http://definition.nexusformat.org/nxdl/3.1"}
#: The application definition whose fields the rules judge, and the base classes whose
#: fields they use beyond it (pixel sizes of NXdetector, columns of NXreflections).
APPLICATION = "applications/NXmx.nxdl.xml"
BASE_CLASS_FIELDS = ("NXdetector", "NXreflections")
OUTPUT = Path(__file__).resolve().parent.parent / "jfconform" / "nxdl_tables.py"


class Field(NamedTuple):
    type: str
    units: str | None
    need: str
    rank: int | None
    deprecated: bool
    enumeration: tuple[str, ...]


def _true(element: ET.Element, name: str) -> bool:
    return element.get(name, "false").strip().lower() == "true"


def need_of(element: ET.Element, *, application: bool) -> str:
    """``required``, ``recommended`` or ``optional`` as the NeXus manual reads NXDL."""
    if _true(element, "recommended"):
        return "recommended"
    if _true(element, "optional"):
        return "optional"
    min_occurs = element.get("minOccurs")
    if _true(element, "required") or (min_occurs is not None and int(min_occurs) > 0):
        return "required"
    if min_occurs == "0" or not application:
        return "optional"
    return "required"


def field_of(element: ET.Element, *, application: bool) -> Field:
    dimensions = element.find("nx:dimensions", NS)
    rank = dimensions.get("rank") if dimensions is not None else None
    items = element.findall("nx:enumeration/nx:item", NS)
    return Field(
        type=element.get("type", "NX_CHAR"),
        units=element.get("units"),
        need=need_of(element, application=application),
        rank=int(rank) if rank is not None and rank.isdigit() else None,
        deprecated=element.get("deprecated") is not None or element.get("maxOccurs") == "0",
        enumeration=tuple(item.get("value", "") for item in items),
    )


def application_tables(
    root: ET.Element,
) -> tuple[dict[str, str], dict[str, dict[str, Field]]]:
    """NXmx's groups (by NX_class path from NXentry) and their fields."""
    groups: dict[str, str] = {}
    fields: dict[str, dict[str, Field]] = {}

    def visit(element: ET.Element, path: str) -> None:
        for group in element.findall("nx:group", NS):
            child = f"{path}/{group.get('type')}" if path else str(group.get("type"))
            groups[child] = need_of(group, application=True)
            fields[child] = {
                str(f.get("name")): field_of(f, application=True)
                for f in group.findall("nx:field", NS)
            }
            visit(group, child)

    visit(root, "")
    return groups, fields


def base_class_names(folder: Path) -> list[str]:
    names = []
    for path in sorted(folder.glob("*.nxdl.xml")):
        root = ET.parse(path).getroot()
        if root.get("category") == "base":
            names.append(str(root.get("name")))
    return names


def base_class_fields(definitions: Path, name: str) -> dict[str, Field]:
    root = ET.parse(definitions / "base_classes" / f"{name}.nxdl.xml").getroot()
    return {
        str(f.get("name")): field_of(f, application=False) for f in root.findall("nx:field", NS)
    }


def source_version(definitions: Path) -> tuple[str, str]:
    """(release as ``git describe`` gives it, full commit), from git when it is a checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(definitions), *args], capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    release = (definitions / "NXDL_VERSION").read_text(encoding="utf-8").strip()
    return git("describe", "--tags") or release, git("rev-parse", "HEAD") or "unknown"


def _literal(value: object) -> str:
    """Python source for a value, strings in double quotes as ruff format writes them."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Field):
        return f"NxdlField({', '.join(_literal(v) for v in value)})"
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def render(definitions: Path, release: str, commit: str) -> str:
    app = ET.parse(definitions / APPLICATION).getroot()
    groups, fields = application_tables(app)
    standard = base_class_names(definitions / "base_classes")
    contributed = base_class_names(definitions / "contributed_definitions")
    lines = [
        '"""NeXus definitions as tables, generated by ci/generate_nxdl_tables.py: do not edit.',
        "",
        f"Source: nexusformat/definitions {release}",
        f"(commit {commit}): {APPLICATION},",
        "base_classes/ and contributed_definitions/. Regenerate with",
        "``python ci/generate_nxdl_tables.py PATH/TO/definitions`` and review the diff.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        f"NXDL_RELEASE = {release!r}",
        f"NXDL_COMMIT = {commit!r}",
        "",
        "",
        "class NxdlField(NamedTuple):",
        '    """One field as its NXDL file declares it."""',
        "",
        "    type: str  # NX_FLOAT, NX_INT, NX_NUMBER, NX_CHAR, NX_BOOLEAN, NX_DATE_TIME, ...",
        "    units: str | None  # units category (NX_LENGTH, NX_TIME, ...); None: no units",
        '    need: str  # "required", "recommended" or "optional"',
        "    rank: int | None  # declared rank; None when not declared or symbolic",
        "    deprecated: bool  # marked deprecated, or forbidden (maxOccurs 0)",
        "    enumeration: tuple[str, ...]  # the allowed values; () when any",
        "",
        "",
        "#: Every standard base class (base_classes/).",
        f"BASE_CLASSES: frozenset[str] = frozenset({_words(standard)}.split())",
        "#: Base classes proposed in contributed_definitions/ (category base).",
        f"CONTRIBUTED_BASE_CLASSES: frozenset[str] = frozenset({_words(contributed)}.split())",
        "",
        "#: NXmx's groups by NX_class path below the root, and whether NXmx requires them.",
        "NXMX_GROUPS: dict[str, str] = {",
        *(f"    {_literal(path)}: {_literal(need)}," for path, need in groups.items()),
        "}",
        "",
        "#: NXmx's fields by the NX_class path of their group.",
        "NXMX_FIELDS: dict[str, dict[str, NxdlField]] = {",
    ]
    for path, members in fields.items():
        lines.append(f"    {_literal(path)}: {{")
        lines += [f"        {_literal(name)}: {_literal(v)}," for name, v in members.items()]
        lines.append("    },")
    lines += ["}", ""]
    for name in BASE_CLASS_FIELDS:
        lines.append(f"#: The fields of the {name} base class.")
        lines.append(f"{name.upper()}_FIELDS: dict[str, NxdlField] = {{")
        lines += [
            f"    {_literal(field)}: {_literal(value)},"
            for field, value in base_class_fields(definitions, name).items()
        ]
        lines += ["}", ""]
    return "\n".join(lines)


def _words(names: list[str], width: int = 88) -> str:
    """A triple-quoted string of names, wrapped to the project's line length."""
    lines, current = [], ""
    for name in names:
        if current and len(current) + len(name) + 1 > width:
            lines.append(current)
            current = ""
        current = f"{current} {name}" if current else name
    body = "\n    ".join([*lines, current])
    return f'"""{body}"""'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("definitions", type=Path, help="checkout of nexusformat/definitions")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help="default: %(default)s")
    parser.add_argument("--commit", help="the commit, when DEFINITIONS is not a git checkout")
    parser.add_argument("--release", help="the release (git describe) to record, likewise")
    args = parser.parse_args(argv)
    if not (args.definitions / APPLICATION).is_file():
        parser.error(f"{args.definitions}: no {APPLICATION}; give a definitions checkout")
    release, commit = source_version(args.definitions)
    release, commit = args.release or release, args.commit or commit
    args.output.write_text(render(args.definitions, release, commit), encoding="utf-8")
    # ruff wraps the long rows as the rest of the project is formatted (a test dependency)
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", str(args.output)])
    if formatted.returncode != 0:
        print("ruff is not installed: run 'ruff format' on the output", file=sys.stderr)
    print(f"wrote {args.output} from nexusformat/definitions {release} ({commit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
