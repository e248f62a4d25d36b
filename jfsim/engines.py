"""Choosing a compute engine, by the same rule for every part that has CPU and GPU engines
(the renderer, the analysis): explicit choices fail loudly, only ``auto`` falls back.

Engine modules follow one contract (style.md Part 2 §5): ``NAME``, ``probe() -> str | None``
(None when usable, else the reason), ``prepare(...)``, ``run(...)``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from types import ModuleType

from jfsim.errors import ConfigError, EngineUnavailable

__all__ = ["DEVICES", "cuda_probe", "select_engine"]

_log = logging.getLogger(__name__)

#: Allowed values of ``device`` / ``--device``.
DEVICES = ("cpu", "gpu", "auto")


@functools.cache
def cuda_probe() -> str | None:
    """None when a CUDA device (or the numba CUDA simulator) is usable, else the reason.

    A device is not enough: numba's CUDA target sets itself up at the first compilation,
    and one that does not support the installed numpy fails there (numba-cuda 0.30.4 with
    numpy 2.5: ``np.row_stack``), which would break ``--device auto`` after it chose the
    GPU. One trivial kernel is therefore compiled here, once per process."""
    from numba import cuda

    try:
        available = cuda.is_available()
    except Exception as error:  # a driver present but broken: report, do not crash
        return f"CUDA driver error ({error})"
    if not available:
        return "no CUDA device found (numba.cuda.is_available() is false)"
    try:
        cuda.jit("void(int64[:])")(_probe_kernel)
    except Exception as error:  # whatever numba raises while it sets up its CUDA target
        return (
            f"numba cannot compile for CUDA ({type(error).__name__}: {error}); check that "
            "the installed numba-cuda supports this numpy"
        )
    return None


def _probe_kernel(values):  # type: ignore[no-untyped-def]
    values[0] += 1


def select_engine(device: str, engines: Mapping[str, ModuleType]) -> ModuleType:
    """The engine of ``engines`` (keyed ``cpu``, ``gpu``) for ``device``; ``auto`` takes the
    GPU when usable, else the CPU with one INFO line."""
    if device not in DEVICES:
        raise ConfigError(f"device: must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        reason = engines["gpu"].probe()
        if reason is None:
            return engines["gpu"]
        _log.info("device auto: using the CPU engine (gpu: %s)", reason)
        return engines["cpu"]
    engine = engines[device]
    reason = engine.probe()
    if reason is not None:
        raise EngineUnavailable(f"{device}: {reason}; use --device cpu (or auto)")
    return engine
