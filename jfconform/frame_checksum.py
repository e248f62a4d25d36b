"""TRUTH-009: are the checked run's frames the truth's images? Compared by content checksum.

A truth file states, per image id, the SHA-256 of the image's pixels
(``/images/pixel_sha256``, uint8 [n_images, 32]): the digest of the decompressed
[height, width] array in C order, each value stored as the little-endian integer type named
by the dataset's ``dtype`` attribute (e.g. ``<i2``); a row of zeros means "not recorded"
(docs/conform.md). The digest is computed here from the frames as the file stores them
(read and decompressed by h5py, converted to that type) with hashlib and numpy alone: the
judge does not run the simulator's code to check the simulator's output.

A frame that reads as nothing but its dataset's fill value was never written (a writer that
missed an image): it is counted as missing, not as substituted.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jfconform.context import FileContext
from jfconform.model import Issue

__all__ = ["TruthChecksums", "check_frames", "frame_sha256", "load_truth_checksums"]

CHECKSUM_DATASET = "images/pixel_sha256"
_SHOWN = 5


@dataclass(frozen=True, slots=True)
class TruthChecksums:
    """The truth's per-image digests: ``digests[i]`` (32 bytes) belongs to ``image_ids[i]``."""

    image_ids: np.ndarray
    digests: np.ndarray
    dtype: np.dtype

    def by_id(self) -> dict[int, bytes]:
        """Recorded digests by image id (rows of zeros, "not recorded", left out)."""
        return {
            int(image_id): bytes(digest)
            for image_id, digest in zip(self.image_ids, self.digests, strict=True)
            if digest.any()
        }


def load_truth_checksums(path: Path) -> TruthChecksums | None:
    """The truth's digests, or None when it has none (written before checksums existed).

    Raises:
        ValueError: the checksum dataset is there but malformed (shape, type, ``dtype``).
    """
    with h5py.File(path, "r") as h5:
        if CHECKSUM_DATASET not in h5:
            return None
        dataset = h5[CHECKSUM_DATASET]
        digests = np.asarray(dataset[()])
        ids = h5.get("images/image_id")  # rows are images 0, 1, ... without it
        image_ids = np.arange(len(digests)) if ids is None else np.asarray(ids[()])
        stated = dataset.attrs.get("dtype")
    stated = stated.decode() if isinstance(stated, bytes) else stated
    try:
        dtype = np.dtype(str(stated))
    except TypeError:
        raise ValueError(f"/{CHECKSUM_DATASET} @dtype {stated!r} is not a numpy type") from None
    if dtype.kind not in "iu" or dtype.byteorder == ">":
        raise ValueError(f"/{CHECKSUM_DATASET} @dtype {stated!r}: expected a little-endian int")
    if digests.dtype != np.uint8 or digests.shape != (len(image_ids), 32):
        raise ValueError(
            f"/{CHECKSUM_DATASET} is {digests.dtype}{list(digests.shape)}, expected "
            f"uint8[{len(image_ids)}, 32] (one SHA-256 per image)"
        )
    return TruthChecksums(image_ids, digests, dtype.newbyteorder("<"))


def frame_sha256(frame: np.ndarray, dtype: np.dtype) -> bytes | None:
    """The SHA-256 of ``frame`` as the truth defines it; None if a value does not fit ``dtype``."""
    values = np.ascontiguousarray(frame, dtype=dtype)
    if frame.dtype != dtype and not np.array_equal(values, frame):
        return None
    return hashlib.sha256(values.data).digest()  # the frame itself, not a copy


#: (run frame index, pixels, fill values that mean "never written").
Frame = tuple[int, np.ndarray, set[Any]]


def _frames(ctx: FileContext, wanted: list[int]) -> Iterator[Frame]:
    """(run frame index, pixels, fill values that mean "never written") for each ``wanted``
    frame the file holds: the truth's image ids bound the reads, not the frame count the
    file declares (which a damaged header may put at 2³²)."""
    fills = {store.dataset.fillvalue for store in ctx.image_stores}
    if ctx.layout in ("integrated", "vds") and ctx.image_dataset is not None:
        dataset = ctx.image_dataset
        if dataset.ndim == 3:
            fills.add(dataset.fillvalue)
            for index in wanted:
                if 0 <= index < dataset.shape[0]:
                    yield index, dataset[index], fills
    elif ctx.layout == "legacy":
        for store in ctx.image_stores:
            if store.dataset.ndim == 3:
                last = store.first_frame + store.dataset.shape[0]
                for index in wanted:
                    if store.first_frame <= index < last:
                        yield index, store.dataset[index - store.first_frame], fills


def _digested(
    frames: Iterator[Frame], dtype: np.dtype
) -> Iterator[tuple[int, np.ndarray, set[Any], bytes | None]]:
    """``frames`` with each one's :func:`frame_sha256`, hashed on a second thread while the
    next frame is read and decompressed: hashlib leaves the interpreter lock, h5py's reads
    keep it, so a long run's check takes about as long as reading its frames."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-sha256") as pool:
        pending: deque[tuple[Frame, Future[bytes | None]]] = deque()
        for frame in frames:
            pending.append((frame, pool.submit(frame_sha256, frame[1], dtype)))
            if len(pending) > 1:
                (index, pixels, fills), digest = pending.popleft()
                yield index, pixels, fills, digest.result()
        for (index, pixels, fills), digest in pending:
            yield index, pixels, fills, digest.result()


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``1–3, 7``, at most ``_SHOWN`` runs."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    shown = [f"{a}–{b}" if b > a else f"{a}" for a, b in runs[:_SHOWN]]
    return ", ".join(shown) + (", ..." if len(runs) > _SHOWN else "")


def check_frames(
    ctx: FileContext, truth_path: Path, image_numbers: np.ndarray | None = None
) -> tuple[list[tuple[str, Issue]], dict[str, Any]]:
    """Compare every frame's digest with the truth's for the same image id (frame i is
    image i, or image ``image_numbers[i]`` in a file that holds a subset of the run).

    Returns (rule ID, issue) pairs (TRUTH-009 naming the frames that differ; TRUTH-001 for
    unreadable checksums) and a JSON-safe summary.
    """
    try:
        checksums = load_truth_checksums(truth_path)
    except (OSError, KeyError, ValueError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        problem = f"{truth_path.name}: cannot read its pixel checksums: {first}"
        return [("TRUTH-001", Issue("/", problem))], {"checked": False, "reason": first}
    if checksums is None:
        return [], {
            "checked": False,
            "reason": "the truth file has no /images/pixel_sha256 (written before checksums)",
        }
    expected = checksums.by_id()
    truth_image_of = {digest: image_id for image_id, digest in sorted(expected.items())}
    compared = matching = 0
    missing: list[int] = []
    differing: list[int] = []
    other_images: list[tuple[int, int]] = []
    if image_numbers is None:
        image_of = {index: index for index in expected}
    else:
        image_of = {
            row: int(number) for row, number in enumerate(image_numbers) if int(number) in expected
        }
    for index, frame, fills, digest in _digested(_frames(ctx, sorted(image_of)), checksums.dtype):
        if digest == expected[image_of[index]]:
            matching += 1
        elif frame.size and frame.min() == frame.max() and frame.flat[0] in fills:
            missing.append(index)
            continue
        else:
            differing.append(index)
            if digest in truth_image_of:
                other_images.append((index, truth_image_of[digest]))
        compared += 1
    summary = {
        "checked": True,
        "checksum": f"sha256 of the pixels as {checksums.dtype.str}",
        "frames_compared": compared,
        "frames_matching": matching,
        "frames_missing": len(missing),
        "frames_differing": len(differing),
        "frames_differing_list": _ranges(differing),
    }
    if not differing:
        return [], summary
    text = (
        f"{len(differing)} of {compared} frames are not the truth's images with the same ids "
        f"(pixel SHA-256 differs): frames {_ranges(differing)}"
    )
    if other_images:
        pairs = ", ".join(f"frame {f} = image {i}" for f, i in other_images[:3])
        more = ", ..." if len(other_images) > 3 else ""
        text += f"; {len(other_images)} of them hold other truth images ({pairs}{more})"
    text += "; nothing was scored"
    return [("TRUTH-009", Issue("/entry/data/data", text))], summary
