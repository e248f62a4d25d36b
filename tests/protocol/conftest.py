"""Fixtures of the protocol tests: the DECTRIS recordings, the CLI and message builders."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jfsim.protocol import Compression, Message, PixelArray

JFSIM = Path(sys.executable).with_name("jfsim")
CLI_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def dectris_dir(shared_testdata: Path) -> Path:
    folder = shared_testdata / "dectris-stream2"
    if not (folder / "EXPECTED.json").is_file():
        pytest.skip(f"DECTRIS Stream V2 test messages not found in {folder}")
    return folder


@pytest.fixture(scope="session")
def dectris_expected(dectris_dir: Path) -> dict[str, Any]:
    return json.loads((dectris_dir / "EXPECTED.json").read_text())


def _run_jfsim(*args: str, input_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``jfsim`` console script as a real subprocess."""
    return subprocess.run(
        [str(JFSIM), *args],
        capture_output=True,
        input=input_bytes,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _small_image_message(
    image_id: int = 0,
    shape: tuple[int, int] = (13, 21),
    dtype: str = "<u2",
    compression: Compression = Compression.BSLZ4,
    seed: int = 0,
) -> Message:
    """A Jungfraujoch-style image message with a small random frame."""
    rng = np.random.default_rng(seed)
    pixels = rng.poisson(2.0, size=shape).astype(dtype)
    return Message(
        "image",
        {
            "series_id": 7,
            "series_unique_id": "7:sample",
            "image_id": image_id,
            "data": {"default": PixelArray.from_numpy(pixels, compression)},
        },
    )


@pytest.fixture(scope="session")
def run_jfsim() -> Callable[..., subprocess.CompletedProcess]:
    """Runs the installed ``jfsim`` console script as a real subprocess."""
    return _run_jfsim


@pytest.fixture(scope="session")
def make_image_message() -> Callable[..., Message]:
    """Builds a Jungfraujoch-style image message with a small random frame."""
    return _small_image_message


@pytest.fixture
def image_message() -> Message:
    return _small_image_message()
