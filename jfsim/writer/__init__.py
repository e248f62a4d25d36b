"""The reference NXmx writer: jfjoch_writer-compatible files from a CBOR/ZeroMQ stream.

``WriterService`` is the PULL service behind ``jfsim write``; ``SeriesWriter`` writes one
series from decoded messages without any socket. File layout: ``<prefix>_master.h5`` plus
``<prefix>_data_NNNNNN.h5`` in the NXmxLegacy / NXmxVDS / NXmxIntegrated layouts (see
docs/writer.md).
"""

from jfsim.writer.errors import (
    FileExistsRefusedError,
    SeriesRefusedError,
    UnsafePrefixError,
    WriterError,
)
from jfsim.writer.plan import FileFormat, SeriesPlan
from jfsim.writer.receiver import WriterConfig, WriterService
from jfsim.writer.safety import check_file_prefix
from jfsim.writer.series_writer import (
    ClosedFile,
    ImageOutcome,
    SeriesState,
    SeriesSummary,
    SeriesWriter,
)
from jfsim.writer.service import file_notification

__all__ = [
    "ClosedFile",
    "FileExistsRefusedError",
    "FileFormat",
    "ImageOutcome",
    "SeriesPlan",
    "SeriesRefusedError",
    "SeriesState",
    "SeriesSummary",
    "SeriesWriter",
    "UnsafePrefixError",
    "WriterConfig",
    "WriterError",
    "WriterService",
    "check_file_prefix",
    "file_notification",
]
