"""The broker: state machine, settings, image buffer and the current collection, together.

``BrokerService`` is what the HTTP layer calls, one method per command; it takes and returns
jfjoch-client models and raises ``BrokerError`` subclasses for refusals. It holds no HTTP:
a Python program can drive it directly. Thread-safe: commands arrive on many threads.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import zmq
from jfjoch_client.models import (
    AzimIntSettings,
    BrokerStatus,
    DatasetSettings,
    DetectorList,
    DetectorListElement,
    DetectorPowerState,
    DetectorSelection,
    DetectorSettings,
    DetectorState,
    DetectorStatus,
    DetectorType,
    FileWriterFormat,
    FileWriterSettings,
    IndexingSettings,
    InstrumentMetadata,
    JfjochStatistics,
    MeasurementStatistics,
    Plots,
    PlotUnitX,
    RoiDefinitions,
    SpotFindingSettings,
    ZeromqMetadataSettings,
    ZeromqPreviewSettings,
)
from pydantic import BaseModel

from jfsim import __version__
from jfsim.detectors import DETECTOR_PRESETS, detector_preset
from jfsim.errors import ConfigError, JfsimError
from jfsim.experiment import Experiment, experiment_from_broker_settings
from jfsim.serve.collection import CANCELLED, SHUTDOWN, Collection, StreamOptions
from jfsim.serve.errors import (
    BadRequest,
    BrokerError,
    DetectorInactive,
    NotFound,
    ServeOptionError,
    Unauthorized,
    WaitTimeout,
)
from jfsim.serve.image_buffer import ImageBuffer
from jfsim.serve.plots import make_plots
from jfsim.serve.settings import SECTIONS, SettingsStore, file_format_name
from jfsim.serve.source import BrokerSource, PoolCache
from jfsim.serve.state import ACTIVE_STATES, BrokerState, StateMachine
from jfsim.serve.writer_files import WriterFileListener
from jfsim.stream.pusher import bind_socket

__all__ = ["BrokerService", "ServeConfig"]

log = logging.getLogger(__name__)

#: States in which settings that shape a series may change.
_SETTLED = (BrokerState.INACTIVE, BrokerState.IDLE, BrokerState.ERROR)
#: The client's detector type of each jfsim detector family (EIGER2 X is a DECTRIS detector).
_DETECTOR_TYPES = {"JUNGFRAU": DetectorType.JUNGFRAU, "EIGER2": DetectorType.DECTRIS}


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``jfsim serve`` is started with."""

    detector: str = "JF4M"
    stream: StreamOptions = field(default_factory=StreamOptions)
    preview_endpoint: str | None = None
    metadata_endpoint: str | None = None
    writer_file_endpoints: tuple[str, ...] = ()
    image_buffer_slots: int = 1000

    def __post_init__(self) -> None:
        detector_preset(self.detector)  # ConfigError names the allowed presets
        if not self.stream.endpoints:
            raise ServeOptionError("endpoint: give at least one, e.g. tcp://127.0.0.1:5500")
        for endpoint in self.stream.endpoints:
            if endpoint.startswith("tcp://") and endpoint.rsplit(":", 1)[-1] in ("*", "0"):
                raise ServeOptionError(
                    f"endpoint {endpoint!r}: give a fixed port; writers connect to it once "
                    "and receive every series there"
                )
        options = self.stream
        try:  # the streamer's own checks of these options, at start rather than at /start
            options.stream_config()
        except JfsimError as error:
            raise ServeOptionError(str(error)) from None
        if options.writer_timeout_s < 0:
            raise ServeOptionError(
                f"writer timeout: must be >= 0 s, got {options.writer_timeout_s}"
            )
        if self.image_buffer_slots < 1:
            raise ServeOptionError(
                f"image buffer: needs at least 1 slot, got {self.image_buffer_slots}"
            )


def _probe_bind(endpoint: str, role: str, kind: int = zmq.PUB) -> None:
    """Bind ``endpoint`` once and let it go: ``StreamOptionError`` (one line naming the
    option) when it cannot be bound now, e.g. because the port is in use."""
    with zmq.Context() as context, context.socket(kind) as probe:
        probe.setsockopt(zmq.LINGER, 0)
        bind_socket(probe, endpoint, role)


def _require_new_address_bindable(name: str, current: str | None, checked: BaseModel) -> None:
    """Refuse a new PUB address that cannot be bound now (e.g. a port in use). Called once
    the settings accepted it: an address they refuse is never bound."""
    address = getattr(checked, "socket_address", None)
    if address is not None and address != current:
        try:
            _probe_bind(address, name)
        except JfsimError as error:
            raise BadRequest(f"{name}.socket_address: {error}") from None


def _require_bindable(config: ServeConfig) -> None:
    """Fail at start, not at the first ``/start``, when an endpoint cannot be bound.

    Each series binds its sockets anew (as the streamer does); a port that is busy now would
    only turn the first collection into an error.
    """
    for endpoint in config.stream.endpoints:
        _probe_bind(endpoint, "image", zmq.PUSH)
    for role, address in (
        ("preview", config.preview_endpoint),
        ("metadata", config.metadata_endpoint),
    ):
        if address is not None:
            _probe_bind(address, role)


class BrokerService:
    """jfjoch_broker's behaviour behind its REST API; see the module docstring."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        _require_bindable(config)
        self.state = StateMachine()
        self.settings = SettingsStore(
            preview_endpoint=config.preview_endpoint, metadata_endpoint=config.metadata_endpoint
        )
        self.buffer = ImageBuffer(config.image_buffer_slots)
        self.pool_cache = PoolCache()
        self.collections: list[Collection] = []
        self._lock = threading.Lock()
        self._detector = detector_preset(config.detector).name
        self._current: Collection | None = None
        self._next_run_number = 0
        self._listener = (
            WriterFileListener(config.writer_file_endpoints, self._file_written)
            if config.writer_file_endpoints
            else None
        )

    # ------------------------------------------------------------------ lifetime
    def request_shutdown(self) -> None:
        """Stop a running series (its end message is still sent); safe in a signal handler."""
        current = self._current
        if current is not None:
            current.stop(SHUTDOWN)

    def close(self) -> None:
        """Stop and wait for the running series, close the writer-notification sockets."""
        current = self._current
        if current is not None:
            current.stop(SHUTDOWN)
            current.join()
        if self._listener is not None:
            self._listener.close()

    def _file_written(self, notification: dict[str, Any]) -> None:
        current = self._current
        if current is not None:
            current.file_written(notification)

    # ------------------------------------------------------------------ commands
    def initialize(self) -> None:
        """Inactive or Error (or Idle) → Idle; forgets the last series and its buffer."""
        self.state.transition(_SETTLED, BrokerState.IDLE, "/initialize")
        with self._lock:
            self._current = None
        self.buffer.clear()

    def deactivate(self) -> None:
        self.state.transition(_SETTLED, BrokerState.INACTIVE, "/deactivate")

    def start(self, settings: DatasetSettings) -> None:
        """Start a series; returns once it is Measuring (or failed) unless ``async_start``."""
        with self._lock:
            run_number = (
                settings.run_number if settings.run_number is not None else self._next_run_number
            )
            collection = self._collection(settings, run_number)
            self.state.transition([BrokerState.IDLE], BrokerState.BUSY, "/start")
            self._next_run_number = run_number + 1
            self._current = collection
            self.collections.append(collection)
        collection.start()
        if settings.async_start:
            return
        if self.state.wait_until(lambda s: s is not BrokerState.BUSY, None) is BrokerState.ERROR:
            raise BrokerError(collection.error or "the series failed")

    def cancel(self) -> None:
        """Stop the running series (end message still sent); no effect when none runs."""
        current = self._current
        if current is not None and self.state.state in ACTIVE_STATES:
            current.stop(CANCELLED)

    def wait_till_done(self, timeout_s: float) -> None:
        """Return when no series runs; 500 if in Error, 502 if Inactive, 504 on timeout."""
        self._settled(self.state.wait_until(lambda s: s not in ACTIVE_STATES, timeout_s), timeout_s)

    def wait_until_running(self, timeout_s: float) -> None:
        """Return when the detector is no longer preparing (Measuring, or already done)."""
        self._settled(
            self.state.wait_until(lambda s: s is not BrokerState.BUSY, timeout_s), timeout_s
        )

    def clear_image_buffer(self) -> None:
        """Forget the buffered images; not while a series runs."""
        self.state.require(_SETTLED, "/image_buffer/clear")
        self.buffer.clear()

    def _settled(self, state: BrokerState | None, timeout_s: float) -> None:
        if state is None:
            raise WaitTimeout(f"timeout of {timeout_s:g} s reached; the operation goes on")
        if state is BrokerState.INACTIVE:
            raise DetectorInactive("the detector is Inactive (POST /initialize)")
        if state is BrokerState.ERROR:
            _, message, _ = self.state.snapshot()
            raise BrokerError(message or "the detector is in Error (POST /initialize)")

    # ------------------------------------------------------------------ a series
    def _collection(self, settings: DatasetSettings, run_number: int) -> Collection:
        experiment = self._experiment(settings, run_number)
        options = self.config.stream
        writer = self.settings.section("file_writer", FileWriterSettings)
        preview = self.settings.section("zeromq_preview", ZeromqPreviewSettings)
        metadata = self.settings.section("zeromq_metadata", ZeromqMetadataSettings)
        start_fields: dict[str, Any] = {"overwrite": bool(writer.overwrite)}
        no_files = writer.format == FileWriterFormat.NOFILEWRITTEN
        if no_files:
            start_fields["file_format"] = FileWriterFormat.NOFILEWRITTEN.value
        rate_hz = options.rate_hz or 1.0 / experiment.dataset.frame_time_s
        try:
            stream_config = options.stream_config(
                rate_hz=None if options.unpaced else rate_hz,
                preview_endpoint=preview.socket_address if preview.enabled else None,
                preview_period_s=preview.period_ms / 1000,
                metadata_endpoint=metadata.socket_address if metadata.enabled else None,
                metadata_period_s=metadata.period_ms / 1000,
            )
        except JfsimError as error:
            raise BrokerError(str(error)) from None
        source = BrokerSource(
            experiment,
            device=options.device,
            start_fields=start_fields,
            pool_cache=self.pool_cache,
        )
        return Collection(
            source,
            stream_config,
            state=self.state,
            buffer=self.buffer,
            writes_files=bool(experiment.dataset.file_prefix) and not no_files,
            writer_timeout_s=options.writer_timeout_s if self._listener else None,
            tokens=tuple(settings.tokens or ()),
        )

    def _experiment(self, settings: DatasetSettings, run_number: int) -> Experiment:
        """The experiment a ``DatasetSettings`` describes, on the selected detector, with the
        file writer and instrument settings applied."""
        body = settings.to_dict()
        if not body.get("image_time_us"):  # absent or 0: the detector's frame time
            detector = self.settings.section("detector", DetectorSettings)
            body["image_time_us"] = detector.frame_time_us
        body["run_number"] = run_number
        try:
            experiment = experiment_from_broker_settings(
                body, detector=self._detector, seed=self.config.stream.seed
            )
        except ConfigError as error:
            raise BadRequest(f"DatasetSettings cannot be simulated: {error}") from None
        instrument = self.settings.section("instrument", InstrumentMetadata)
        dataset = dataclasses.replace(
            experiment.dataset,
            file_format=file_format_name(self.settings.section("file_writer", FileWriterSettings)),
            source_name=instrument.source_name,
            source_type=instrument.source_type or "",
            instrument_name=instrument.instrument_name,
        )
        return dataclasses.replace(experiment, dataset=dataset)

    # ------------------------------------------------------------------ settings
    def get_config(self, name: str) -> BaseModel:
        return self.settings.get(name)

    def put_config(self, name: str, value: BaseModel) -> None:
        if not SECTIONS[name].during_measurement:
            self.state.require(_SETTLED, f"PUT /config/{name}")
        usable = None
        if name == "zeromq_preview" or name == "zeromq_metadata":
            current = getattr(self.settings.get(name), "socket_address", None)
            usable = functools.partial(_require_new_address_bindable, name, current)
        self.settings.put(name, value, usable=usable)

    def detector_list(self) -> DetectorList:
        elements = []
        for index, detector in enumerate(DETECTOR_PRESETS.values()):
            elements.append(
                DetectorListElement(
                    id=index,
                    description=detector.description,
                    serial_number=detector.serial_number,
                    base_ipv4_addr="127.0.0.1",
                    udp_interface_count=1,
                    nmodules=len(detector.modules),
                    width=detector.width_pxl,
                    height=detector.height_pxl,
                    pixel_size_mm=detector.pixel_size_mm,
                    readout_time_ns=0,  # a simulated detector: no read-out limits
                    min_frame_time_ns=0,
                    min_count_time_ns=0,
                    type=_DETECTOR_TYPES.get(detector.family),
                )
            )
        current = list(DETECTOR_PRESETS).index(self._detector)
        return DetectorList(detectors=elements, current_id=current)

    def select_detector(self, selection: DetectorSelection) -> None:
        """Switch to another detector preset; the detector becomes Inactive (re-initialize)."""
        names = list(DETECTOR_PRESETS)
        if not 0 <= selection.id < len(names):
            raise BadRequest(
                f"DetectorSelection.id: {selection.id} is not a detector; "
                f"GET /config/select_detector lists ids 0..{len(names) - 1}"
            )
        self.state.transition(_SETTLED, BrokerState.INACTIVE, "PUT /config/select_detector")
        with self._lock:
            self._detector = names[selection.id]

    # ------------------------------------------------------------------ reports
    def authorize(self, authorization: str | None) -> None:
        """Refuse (401) when the series is protected by tokens and none of them is sent."""
        current = self._current
        if current is None or not current.tokens:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in current.tokens:
            raise Unauthorized(
                "this dataset is protected by /start tokens; send Authorization: Bearer TOKEN"
            )

    def is_authorized(self, authorization: str | None) -> bool:
        try:
            self.authorize(authorization)
        except Unauthorized:
            return False
        return True

    def status(self) -> BrokerStatus:
        state, message, severity = self.state.snapshot()
        current = self._current
        progress = current.progress() if current and state is BrokerState.MEASURING else None
        return BrokerStatus(
            state=state.value,
            progress=progress,
            message=message,
            message_severity=severity if message else None,
            broker_version=f"jfsim {__version__}",
        )

    def detector_status(self) -> DetectorStatus:
        """The simulated detector: powered while initialized, busy while a series runs."""
        state = self.state.state
        current = self._current
        triggers_left = 0
        if current is not None and state in ACTIVE_STATES:
            per_trigger = max(1, current.experiment.dataset.images_per_trigger)
            triggers_left = -(-(current.n_images - current.images_sent) // per_trigger)
        detector_state = {
            BrokerState.INACTIVE: DetectorState.NOT_CONNECTED,
            BrokerState.ERROR: DetectorState.ERROR,
            BrokerState.IDLE: DetectorState.IDLE,
        }.get(state, DetectorState.BUSY)
        return DetectorStatus(
            state=detector_state,
            powerchip=(
                DetectorPowerState.POWEROFF
                if state is BrokerState.INACTIVE
                else DetectorPowerState.POWERON
            ),
            server_version=f"jfsim {__version__}",
            number_of_triggers_left=triggers_left,
            fpga_temp_degC=[],
            high_voltage_V=[],
        )

    def current(self) -> Collection:
        current = self._current
        if current is None:
            raise NotFound("no data collection since the last /initialize")
        return current

    def measurement(self) -> MeasurementStatistics:
        return self.current().statistics()

    def plots(self, kind: str, **options: Any) -> Plots:
        current = self._current
        if current is None or current.metrics is None:
            return Plots(title=kind, unit_x=PlotUnitX.IMAGE_NUMBER, plot=[])
        return make_plots(kind, current.view(), **options)

    def statistics(self, authorization: str | None) -> JfjochStatistics:
        """``/statistics``: everything at once; ``measurement`` only if authorized."""
        current = self._current
        measurement = None
        if current is not None and self.is_authorized(authorization):
            measurement = current.statistics()
        return JfjochStatistics(
            detector=self.detector_status(),
            detector_list=self.detector_list(),
            detector_settings=self.settings.section("detector", DetectorSettings),
            instrument_metadata=self.settings.section("instrument", InstrumentMetadata),
            file_writer_settings=self.settings.section("file_writer", FileWriterSettings),
            data_processing_settings=self.settings.section("spot_finding", SpotFindingSettings),
            measurement=measurement,
            broker=self.status(),
            zeromq_preview=self.settings.section("zeromq_preview", ZeromqPreviewSettings),
            zeromq_metadata=self.settings.section("zeromq_metadata", ZeromqMetadataSettings),
            roi=self.settings.section("roi", RoiDefinitions),
            az_int=self.settings.section("azim_int", AzimIntSettings),
            buffer=self.buffer.status(),
            indexing=self.settings.section("indexing", IndexingSettings),
        )
