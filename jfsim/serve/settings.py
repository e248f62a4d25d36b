"""The ``/config/*`` settings a beamline puts and reads back, kept as jfjoch-client models.

Each section is one model of the client package with jfjoch_broker's defaults. The ones
that shape a series (file writer, detector timing, instrument, ZeroMQ preview and metadata
sockets) are used by the next ``/start``; spot finding, azimuthal integration, indexing and
ROIs are stored and reported back for the analysis that consumes them (``jfsim process``
uses the same models). Sections marked ``during_measurement`` may change while Measuring,
as the broker allows for its analysis settings; the others need an idle detector.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from jfjoch_client.models import (
    AzimIntSettings,
    DetectorSettings,
    FileWriterFormat,
    FileWriterSettings,
    GeomRefinementAlgorithm,
    IndexingAlgorithm,
    IndexingSettings,
    InstrumentMetadata,
    RoiAzimList,
    RoiBoxList,
    RoiCircleList,
    RoiDefinitions,
    SpotFindingSettings,
    ZeromqMetadataSettings,
    ZeromqPreviewSettings,
)
from pydantic import BaseModel

from jfsim.experiment import Dataset
from jfsim.serve.errors import BadRequest, NotEmulated

Model = TypeVar("Model", bound=BaseModel)

__all__ = ["SECTIONS", "ConfigSection", "SettingsStore", "file_format_name"]

#: A PUB socket address the streamer can bind (ZeroMQ convention, as the broker documents).
_ENDPOINT = re.compile(r"^(tcp://[^:/]+:\d+|ipc://.+|inproc://.+)$")
#: jfsim's writer layouts for the broker's FileWriterFormat (NoFileWritten: nothing written).
_LAYOUTS = {
    FileWriterFormat.NXMXLEGACY: "legacy",
    FileWriterFormat.NXMXVDS: "vds",
    FileWriterFormat.NXMXINTEGRATED: "integrated",
    FileWriterFormat.NOFILEWRITTEN: "vds",
}
#: Default frame time: 2 kHz, the rate of jfsim's experiments (``Dataset.frame_time_s``).
DEFAULT_FRAME_TIME_US = round(Dataset().frame_time_s * 1e6)
DEFAULT_PERIOD_MS = 1000


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """One ``/config/NAME`` endpoint: its model and whether it may change while Measuring."""

    name: str
    model: type[BaseModel]
    during_measurement: bool


SECTIONS: dict[str, ConfigSection] = {
    section.name: section
    for section in (
        ConfigSection("file_writer", FileWriterSettings, False),
        ConfigSection("detector", DetectorSettings, False),
        ConfigSection("instrument", InstrumentMetadata, False),
        ConfigSection("zeromq_preview", ZeromqPreviewSettings, False),
        ConfigSection("zeromq_metadata", ZeromqMetadataSettings, False),
        ConfigSection("roi", RoiDefinitions, False),
        ConfigSection("spot_finding", SpotFindingSettings, True),
        ConfigSection("azim_int", AzimIntSettings, True),
        ConfigSection("indexing", IndexingSettings, True),
    )
}


def _defaults(preview_endpoint: str | None, metadata_endpoint: str | None) -> dict[str, BaseModel]:
    """jfjoch_broker's defaults; the ZeroMQ sockets are enabled when given on the command line."""
    dataset = Dataset()
    return {
        "file_writer": FileWriterSettings(overwrite=False, format=FileWriterFormat.NXMXVDS),
        "detector": DetectorSettings(frame_time_us=DEFAULT_FRAME_TIME_US),
        "instrument": InstrumentMetadata(
            source_name=dataset.source_name,
            source_type=dataset.source_type,
            instrument_name=dataset.instrument_name,
        ),
        "zeromq_preview": ZeromqPreviewSettings(
            enabled=preview_endpoint is not None,
            period_ms=DEFAULT_PERIOD_MS,
            socket_address=preview_endpoint,
        ),
        "zeromq_metadata": ZeromqMetadataSettings(
            enabled=metadata_endpoint is not None,
            period_ms=DEFAULT_PERIOD_MS,
            socket_address=metadata_endpoint,
        ),
        "roi": RoiDefinitions(
            box=RoiBoxList(rois=[]), circle=RoiCircleList(rois=[]), azim=RoiAzimList(rois=[])
        ),
        "spot_finding": SpotFindingSettings(
            enable=True,
            indexing=True,
            signal_to_noise_threshold=3.0,
            photon_count_threshold=10,
            min_pix_per_spot=2,
            max_pix_per_spot=50,
            high_resolution_limit_for_spot_count_low_res=5.0,
            quick_integration=False,
            ice_ring_width_q_recipA=0.02,
        ),
        "azim_int": AzimIntSettings(
            polarization_corr=True,
            solid_angle_corr=True,
            low_q_recipA=0.1,
            high_q_recipA=5.0,
            q_spacing=0.01,
        ),
        "indexing": IndexingSettings(
            algorithm=IndexingAlgorithm.AUTO,
            fft_max_unit_cell_A=250.0,
            fft_min_unit_cell_A=10.0,
            fft_high_resolution_A=2.0,
            fft_num_vectors=16384,
            tolerance=0.1,
            thread_count=4,
            geom_refinement_algorithm=GeomRefinementAlgorithm.BEAMCENTER,
            unit_cell_dist_tolerance=0.05,
            viable_cell_min_spots=10,
            index_ice_rings=False,
            rotation_indexing=True,
            rotation_indexing_min_angular_range_deg=20.0,
            rotation_indexing_angular_stride_deg=0.5,
            blocking=False,
        ),
    }


def file_format_name(settings: FileWriterSettings) -> str:
    """jfsim's layout name (``legacy``, ``vds``, ``integrated``) for the file writer settings."""
    return _LAYOUTS[FileWriterFormat(settings.format or FileWriterFormat.NXMXVDS)]


class SettingsStore:
    """The current value of every section; thread-safe. ``put`` checks beyond the models."""

    def __init__(
        self, *, preview_endpoint: str | None = None, metadata_endpoint: str | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._values = _defaults(preview_endpoint, metadata_endpoint)

    def get(self, name: str) -> BaseModel:
        with self._lock:
            return self._values[name]

    def section(self, name: str, model: type[Model]) -> Model:
        """Section ``name``, which holds a ``model`` (the type the caller relies on)."""
        value = self.get(name)
        if not isinstance(value, model):
            raise TypeError(f"/config/{name} holds a {type(value).__name__}, not {model.__name__}")
        return value

    def put(
        self, name: str, value: BaseModel, *, usable: Callable[[BaseModel], None] | None = None
    ) -> None:
        """Store ``value`` for section ``name`` after the checks the models cannot make, and
        then ``usable(value)``'s (which raises to refuse it)."""
        with self._lock:
            if isinstance(value, FileWriterSettings):
                _check_file_writer(value)
            if isinstance(value, ZeromqPreviewSettings | ZeromqMetadataSettings):
                value = _with_socket(value, self._values[name], name)
            if usable is not None:
                usable(value)
            self._values[name] = value


def _check_file_writer(value: FileWriterSettings) -> None:
    file_format = FileWriterFormat(value.format or FileWriterFormat.NXMXVDS)
    if file_format in (FileWriterFormat.CBF, FileWriterFormat.TIFF):
        raise BadRequest(
            f"FileWriterSettings.format: {file_format.value} is deprecated and rejected by "
            "jfjoch_broker; use NXmxVDS, NXmxLegacy or NXmxIntegrated"
        )
    if file_format is FileWriterFormat.NXMXONLYDATA:
        raise NotEmulated(
            "FileWriterSettings.format: jfsim does not emulate NXmxOnlyData; use NXmxVDS, "
            "NXmxLegacy, NXmxIntegrated or NoFileWritten"
        )


def _with_socket(
    value: ZeromqPreviewSettings | ZeromqMetadataSettings, current: BaseModel, name: str
) -> ZeromqPreviewSettings | ZeromqMetadataSettings:
    """Keep the current socket address when none is sent; refuse an unusable one."""
    model = type(value).__name__
    sent = value.socket_address
    if sent and not _ENDPOINT.match(sent):
        raise BadRequest(
            f"{model}.socket_address: {sent!r} is not a ZeroMQ address; "
            "use tcp://HOST:PORT, e.g. tcp://127.0.0.1:5400"
        )
    if sent and not sent.startswith("tcp://"):
        # binding ipc://PATH replaces whatever file is at PATH: only the operator may
        # choose one (--preview, --metadata), never a client
        raise BadRequest(
            f"{model}.socket_address: {sent!r}: only tcp://HOST:PORT can be set over "
            "HTTP; give ipc:// addresses with jfsim serve --preview/--metadata"
        )
    address = sent or getattr(current, "socket_address", None)
    if value.enabled and address is None:
        raise BadRequest(
            f"{model}.socket_address: needed to enable /config/{name}; "
            "send one, e.g. tcp://127.0.0.1:5400"
        )
    if name == "zeromq_preview" and value.period_ms < 0:
        raise BadRequest(
            f"{model}.period_ms: must be >= 0 (0 = every image), got {value.period_ms}"
        )
    return value.model_copy(update={"socket_address": address})
