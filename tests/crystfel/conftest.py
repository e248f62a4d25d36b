"""A small series to serve to CrystFEL clients: int16 frames with spots and error pixels."""

from __future__ import annotations

import numpy as np
import pytest

from jfsim.protocol import Compression, Message, PixelArray
from jfsim.stream import MessageListSource

SHAPE = (48, 64)
ERROR_VALUE = -32768


def crystfel_series(n_images: int = 5) -> list[Message]:
    rng = np.random.default_rng(4)
    series = {"series_id": 2, "series_unique_id": "2:crystfel"}
    start = Message(
        "start",
        {
            **series,
            "image_size_x": SHAPE[1],
            "image_size_y": SHAPE[0],
            "number_of_images": n_images,
            "incident_energy": 12400.0,
            "detector_distance": 0.12,
            "error_value": ERROR_VALUE,
            "frame_time": 0.001,
            "count_time": 0.001,
            "channels": ["default"],
        },
    )
    images = []
    for image_id in range(n_images):
        pixels = rng.poisson(2.0, size=SHAPE).astype(np.int16)
        pixels[:, 32] = ERROR_VALUE  # a gap column
        spots = [{"x": float(image_id) + 0.25, "y": 3.0, "I": 100.0 + image_id}]
        images.append(
            Message(
                "image",
                {
                    **series,
                    "image_id": image_id,
                    "data": {"default": PixelArray.from_numpy(pixels, Compression.BSLZ4)},
                    "spots": spots,
                },
            )
        )
    return [start, *images, Message("end", series)]


@pytest.fixture
def crystfel_source() -> MessageListSource:
    return MessageListSource(crystfel_series(), description="crystfel test series")
