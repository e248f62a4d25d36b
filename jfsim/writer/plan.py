"""What a start message asks the writer to produce: layout, names, shapes, sentinels.

The start message is read once into a frozen ``SeriesPlan``; everything later (data files,
master file, notifications) works from the plan, so a bad start is refused before any file
exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from jfsim.writer.errors import SeriesRefusedError
from jfsim.writer.safety import check_file_prefix
from jfsim.writer.start_fields import check_start_fields

#: Default width of the per-spot arrays when the start message does not give max_spot_count.
DEFAULT_MAX_SPOTS = 250
#: In-memory per-image analysis rows of one open file: bytes per spot slot and per image.
SPOT_SLOT_BYTES = 34
IMAGE_ROW_BYTES = 512
#: A series whose per-file analysis buffer would exceed this is refused.
MAX_ANALYSIS_BUFFER_BYTES = 4 << 30
#: Data files of one series (number_of_images / images_per_file); each is an HDF5 file and a
#: link in the master.
MAX_DATA_FILES = 100_000


class FileFormat(str, Enum):
    """The three master-file layouts of Jungfraujoch (S1 §2), plus writing nothing."""

    LEGACY = "legacy"  # NXmxLegacy = 1: external links data_NNNNNN, HDF5 1.8 readable
    VDS = "vds"  # NXmxVDS = 2: virtual datasets over the data files
    INTEGRATED = "integrated"  # NXmxIntegrated = 3: one file
    NO_FILE = "nofile"  # images accepted, nothing written

    @classmethod
    def parse(cls, value: Any) -> FileFormat:
        """Accept the enum values, Jungfraujoch's numbers 1/2/3 and names like NXmxVDS."""
        aliases = {
            "1": cls.LEGACY,
            "nxmxlegacy": cls.LEGACY,
            "2": cls.VDS,
            "nxmxvds": cls.VDS,
            "3": cls.INTEGRATED,
            "nxmxintegrated": cls.INTEGRATED,
            "nofilewritten": cls.NO_FILE,
            "nofile": cls.NO_FILE,
            "none": cls.NO_FILE,
        }
        text = str(value).strip().lower()
        if text in aliases:
            return aliases[text]
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise SeriesRefusedError(
                f"file_format {value!r}: unknown; use one of {allowed} (or 1, 2, 3)"
            ) from None


def _dtype_from_start(fields: dict[str, Any]) -> np.dtype:
    """Stored pixel type: ``image_dtype`` if given, else bit depth + sign of the sentinel."""
    name = fields.get("image_dtype")
    if isinstance(name, str):
        aliases = {
            "int16": "<i2",
            "int32": "<i4",
            "uint8": "u1",
            "uint16": "<u2",
            "uint32": "<u4",
            "int8": "i1",
        }
        if name.lower() not in aliases:
            raise SeriesRefusedError(
                f"start message: field 'image_dtype': unsupported {name!r}; "
                f"use one of {', '.join(aliases)}"
            )
        return np.dtype(aliases[name.lower()])
    bits = fields.get("bit_depth_image", 16)  # one of 8, 16, 32 (check_start_fields)
    error_value = fields.get("error_value")
    signed = isinstance(error_value, int) and error_value < 0
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    """The file set for one series, derived from its start message.

    ``image_shape`` is ``(height, width)``; data file ``k`` (0-based) holds images
    ``k * images_per_file`` … and is named ``<prefix>_data_{k+1:06d}.h5``.
    """

    file_prefix: PurePosixPath | None  # None: empty prefix, nothing is written
    file_format: FileFormat
    n_images: int
    images_per_file: int
    image_shape: tuple[int, int]
    image_dtype: np.dtype
    error_value: int
    max_spots: int
    azint_shape: tuple[int, int] | None
    series_id: int | None
    series_unique_id: str | None
    write_master_file: bool = True  # False: a secondary writer of a multi-socket stream
    requested_format: FileFormat | None = None  # what the start message named, if anything

    def format_choice(self, override: FileFormat | None) -> str:
        """Which layout is used and why, for the log (``--format`` wins over the start)."""
        if override is not None and self.requested_format not in (None, override):
            assert self.requested_format is not None
            return (
                f"{self.file_format.value} (--format; the start message asked for "
                f"{self.requested_format.value})"
            )
        if override is not None:
            return f"{self.file_format.value} (--format)"
        if self.requested_format is not None:
            return f"{self.file_format.value} (start message)"
        return f"{self.file_format.value} (default: the start message names none)"

    @property
    def n_data_files(self) -> int:
        if self.file_format in (FileFormat.INTEGRATED, FileFormat.NO_FILE):
            return 0
        return math.ceil(self.n_images / self.images_per_file)

    @property
    def writes_files(self) -> bool:
        return self.file_prefix is not None and self.file_format is not FileFormat.NO_FILE

    def images_in_file(self, file_index: int) -> int:
        first = file_index * self.images_per_file
        return min(self.images_per_file, self.n_images - first)

    def master_path(self, root_dir: Path) -> Path:
        assert self.file_prefix is not None
        return root_dir / f"{self.file_prefix}_master.h5"

    def data_file_path(self, root_dir: Path, file_index: int) -> Path:
        assert self.file_prefix is not None
        return root_dir / f"{self.file_prefix}_data_{file_index + 1:06d}.h5"

    def final_paths(self, root_dir: Path) -> list[Path]:
        """The files refused up front when they exist: the master, for the writer that
        writes it. Data files are checked as they are opened: with several image sockets
        another writer may have renamed its data files before this one saw the start."""
        if not self.writes_files or not self.write_master_file:
            return []
        return [self.master_path(root_dir)]

    @classmethod
    def from_start(
        cls,
        fields: dict[str, Any],
        default_format: FileFormat,
        format_override: FileFormat | None = None,
    ) -> SeriesPlan:
        """Read a start message's fields; ``SeriesRefusedError``/``UnsafePrefixError`` if bad.

        Args:
            default_format: the layout when the start message names none.
            format_override: the layout to use whatever the start message names (the
                writer's ``--format``).
        """
        prefix_text = fields.get("file_prefix", "")
        prefix = check_file_prefix(prefix_text) if prefix_text != "" else None
        check_start_fields(fields)
        requested = (
            FileFormat.parse(fields["file_format"])
            if fields.get("file_format") not in (None, "")
            else None
        )
        file_format = format_override or requested or default_format
        n_images = fields["number_of_images"]
        images_per_file = fields.get("images_per_file", n_images)
        height, width = fields["image_size_y"], fields["image_size_x"]
        dtype = _dtype_from_start(fields)
        info = np.iinfo(dtype)
        error_value = fields.get("error_value")
        if not isinstance(error_value, int) or not info.min <= error_value <= info.max:
            error_value = int(info.min) if dtype.kind == "i" else int(info.max)
        max_spots = fields.get("max_spot_count", DEFAULT_MAX_SPOTS)
        phi_bins = fields.get("az_int_phi_bin_count")
        q_bins = fields.get("az_int_q_bin_count")
        azint_shape = None
        if isinstance(q_bins, int) and q_bins > 0:
            azint_shape = (phi_bins if isinstance(phi_bins, int) and phi_bins > 0 else 1, q_bins)
        n_files = -(-n_images // images_per_file)
        if file_format in (FileFormat.LEGACY, FileFormat.VDS) and n_files > MAX_DATA_FILES:
            raise SeriesRefusedError(
                f"start message: field 'images_per_file': {n_images} images at "
                f"{images_per_file} per file make {n_files} data files (at most "
                f"{MAX_DATA_FILES}); send a larger images_per_file"
            )
        rows = min(n_images if file_format is FileFormat.INTEGRATED else images_per_file, n_images)
        azint_bytes = 3 * 4 * azint_shape[0] * azint_shape[1] if azint_shape else 0
        buffer_bytes = rows * (max_spots * SPOT_SLOT_BYTES + IMAGE_ROW_BYTES + azint_bytes)
        if buffer_bytes > MAX_ANALYSIS_BUFFER_BYTES:
            raise SeriesRefusedError(
                f"start message: {rows} images per file × (max_spot_count {max_spots}, "
                f"azimuthal bins {azint_shape}) needs {buffer_bytes >> 20} MiB of analysis "
                "buffers; use fewer images_per_file (legacy/vds) or fewer spots or bins"
            )
        series_id = fields.get("series_id")
        unique_id = fields.get("series_unique_id")
        return cls(
            file_prefix=prefix,
            file_format=file_format,
            n_images=n_images,
            images_per_file=images_per_file,
            image_shape=(height, width),
            image_dtype=dtype,
            error_value=int(error_value),
            max_spots=max_spots,
            azint_shape=azint_shape,
            series_id=series_id if isinstance(series_id, int) else None,
            series_unique_id=unique_id if isinstance(unique_id, str) else None,
            write_master_file=(
                fields.get("write_master_file") is not False or file_format is FileFormat.INTEGRATED
            ),
            requested_format=requested,
        )
