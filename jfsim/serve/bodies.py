"""Request bodies in, response bodies out: the pydantic models of ``jfjoch-client`` itself.

Every JSON body is validated by the client package's own model (``DatasetSettings``,
``SpotFindingSettings``, …) and every JSON answer is produced by one, so the server accepts
exactly what the client sends and the client can always read what the server answers. A
body a model rejects becomes ``BadRequest`` naming the model and the field:
``DatasetSettings.ntrigger: Input should be greater than or equal to 1 (got 0)``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from jfsim.serve.errors import BadRequest

__all__ = ["describe_validation_error", "parse_body", "validated"]

Model = TypeVar("Model", bound=BaseModel)
log = logging.getLogger(__name__)

#: pydantic names the branch of a Union in an error location (``float``, ``constrained-int``,
#: ``function-after[...]``); those are not fields, so they are left out of the path.
_UNION_BRANCH = re.compile(r"^(float|int|str|bool|bytes|list|dict|none)$|-|\[")
_MAX_INPUT_CHARS = 60


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _UNION_BRANCH.search(part):
            path += f".{part}"
    return path


def describe_validation_error(model_name: str, error: ValidationError) -> str:
    """One line naming the first rejected field, what is wrong and the value sent."""
    by_field: dict[str, ErrorDetails] = {}
    for problem in error.errors():
        by_field.setdefault(_field_path(problem["loc"]), problem)
    path, first = next(iter(by_field.items()))
    text = f"{model_name}{path}: {first['msg']}"
    if first["type"] != "missing":
        shown = repr(first.get("input"))
        if len(shown) > _MAX_INPUT_CHARS:
            shown = shown[: _MAX_INPUT_CHARS - 3] + "..."
        text += f" (got {shown})"
    if len(by_field) > 1:
        others = ", ".join(name.lstrip(".") for name in list(by_field)[1:4])
        text += f"; also rejected: {others}" + (", …" if len(by_field) > 4 else "")
    return text


def validated(model: type[Model], document: Any) -> Model:
    """``document`` (parsed JSON) as an instance of ``model``, or ``BadRequest``."""
    name = model.__name__
    if not isinstance(document, dict):
        raise BadRequest(f"{name}: expected a JSON object, got {type(document).__name__}")
    try:
        value = model.model_validate(document)
    except ValidationError as error:
        raise BadRequest(describe_validation_error(name, error)) from None
    known = {field.alias or key for key, field in model.model_fields.items()} | set(
        model.model_fields
    )
    unknown = sorted(str(key) for key in document if key not in known)
    if unknown:  # accepted (a newer broker's field), but a typo must not pass unseen
        log.warning("%s: ignored unknown field(s) %s", name, ", ".join(unknown))
    return value


def parse_body(model: type[Model], raw: bytes) -> Model:
    """The request body ``raw`` (JSON) as an instance of ``model``, or ``BadRequest``."""
    name = model.__name__
    if not raw.strip():
        raise BadRequest(f"{name}: the request has no body; send a {name} as JSON")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"{name}: the body is not valid JSON ({error})") from None
    except RecursionError:
        raise BadRequest(f"{name}: the body's JSON is nested too deeply") from None
    _refuse_unstorable(name, document)
    return validated(model, document)


def _refuse_unstorable(name: str, document: Any) -> None:
    """Refuse values JSON can carry but no start message can: text with a lone surrogate
    (``"\\ud800"``, not UTF-8) and integers beyond 64 bits. They used to pass the models and
    fail the series later, leaving the broker in Error."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _refuse_text(name, f"{path}.{key}", key)
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            _refuse_text(name, path, value)
        elif isinstance(value, int) and not -(2**63) <= value < 2**64:
            raise BadRequest(f"{name}{path}: {value} does not fit in 64 bits")


def _refuse_text(name: str, path: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            f"{name}{path}: text with a lone surrogate ({text[:20]!r}) is not UTF-8"
        ) from None
