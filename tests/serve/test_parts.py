"""The broker's parts in process: body validation, settings, state machine, plots, TIFF, and
the translation of a complete ``DatasetSettings`` into an experiment."""

from __future__ import annotations

import io
import math
import threading

import jfjoch_client as jc
import numpy as np
import pytest
import tifffile

from jfsim.experiment import GridScan, RotationScan, experiment_from_broker_settings
from jfsim.protocol import Compression, PixelArray
from jfsim.serve.bodies import parse_body
from jfsim.serve.errors import BadRequest, NotEmulated, WrongState
from jfsim.serve.plots import FrameMetrics, SeriesView, make_plots
from jfsim.serve.settings import SettingsStore
from jfsim.serve.state import BrokerState, StateMachine
from jfsim.serve.tiff import tiff_bytes
from jfsim.stream import PoolFrame

DATASET = {
    "beam_x_pxl": 515.5,
    "beam_y_pxl": 530.5,
    "detector_distance_mm": 100.0,
    "incident_energy_keV": 12.4,
}


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (jc.DatasetSettings, b"", "DatasetSettings: the request has no body"),
        (jc.DatasetSettings, b"{nope", "DatasetSettings: the body is not valid JSON"),
        (jc.DatasetSettings, b"[1, 2]", "DatasetSettings: expected a JSON object, got list"),
        (jc.DatasetSettings, b'{"beam_y_pxl": 1}', "DatasetSettings.beam_x_pxl: Field required"),
        (
            jc.DatasetSettings,
            b'{"beam_x_pxl": "a", "beam_y_pxl": 1, "detector_distance_mm": 1, '
            b'"incident_energy_keV": 12}',
            "DatasetSettings.beam_x_pxl: Input should be a valid number (got 'a')",
        ),
        (
            jc.DatasetSettings,
            b'{"beam_x_pxl": 1, "beam_y_pxl": 1, "detector_distance_mm": 1, '
            b'"incident_energy_keV": 12, "goniometer": {"step": 1, "vector": [1, 0]}}',
            "DatasetSettings.goniometer.vector: List should have at least 3 items",
        ),
        (
            jc.RoiDefinitions,
            b'{"box": {"rois": [{"name": "", "min_x_pxl": 0, "max_x_pxl": 1, "min_y_pxl": 0, '
            b'"max_y_pxl": 1}]}, "circle": {"rois": []}, "azim": {"rois": []}}',
            "RoiDefinitions.box.rois[0].name: String should have at least 1 character",
        ),
    ],
    ids=["empty", "not-json", "not-object", "missing", "union", "nested", "list-index"],
)
def test_a_rejected_body_names_the_model_and_the_field(model, body, message):
    with pytest.raises(BadRequest) as caught:
        parse_body(model, body)
    assert caught.value.status == 400
    assert caught.value.msg.startswith(message)


def test_an_unknown_field_is_accepted_but_logged_by_name(caplog):
    body = b'{"beam_x_pxl": 1, "beam_y_pxl": 1, "detector_distance_mm": 1, ' + (
        b'"incident_energy_keV": 12, "unit_celll": {"a": 79}, "bogus": 1}'
    )
    with caplog.at_level("WARNING", logger="jfsim.serve.bodies"):
        settings = parse_body(jc.DatasetSettings, body)
    assert settings.unit_cell is None
    assert "DatasetSettings: ignored unknown field(s) bogus, unit_celll" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="jfsim.serve.bodies"):
        parse_body(
            jc.DatasetSettings,
            b'{"beam_x_pxl": 1, "beam_y_pxl": 1, '
            b'"detector_distance_mm": 1, "incident_energy_keV": 12}',
        )
    assert caplog.text == ""


def test_a_complete_dataset_settings_from_the_client_becomes_an_experiment():
    """Every field the client can send is either simulated or accepted and ignored."""
    body = jc.DatasetSettings(
        **DATASET,
        images_per_trigger=2,
        ntrigger=3,
        image_time_us=1000,
        file_prefix="run/x",
        images_per_file=4,
        space_group_number=19,
        sample_name="lyso",
        compression="none",
        total_flux=1e12,
        transmission=0.5,
        beam_size_x_um=10,
        beam_size_y_um=5,
        goniometer=jc.RotationAxis(step=0.0, vector=[-1, 0, 0], helical_step_um=[0, 0, 1]),
        grid_scan=jc.GridScan(n_fast=2, step_x_um=10, step_y_um=10),
        header_appendix={"hdf5": {"a": 1}},
        image_appendix="x",
        data_reduction_factor_serialmx=1.0,
        pixel_value_low_threshold=0,
        run_number=3,
        run_name="three",
        experiment_group="p1",
        poisson_compression=0,
        write_nxmx_hdf5_master=True,
        save_calibration=False,
        polarization_factor=0.99,
        ring_current_mA=400.0,
        sample_temperature_K=100.0,
        unit_cell=jc.UnitCell(a=40, b=50, c=60, alpha=90, beta=90, gamma=90),
        spot_finding=True,
        smargon=jc.DatasetSettingsSmargon(phi_deg=0, chi_deg=0),
        max_spot_count=100,
        detect_ice_rings=False,
        async_start=True,
        tokens=["secret"],
        xray_fluorescence_spectrum=jc.DatasetSettingsXrayFluorescenceSpectrum(
            energy_eV=[1.0], data=[2.0]
        ),
    )
    every_field = {field.alias or name for name, field in jc.DatasetSettings.model_fields.items()}
    assert set(body.to_dict()) == every_field
    experiment = experiment_from_broker_settings(body.to_dict(), detector="JF1M")
    dataset = experiment.dataset
    assert (dataset.number_of_images, dataset.images_per_file) == (6, 4)
    assert (dataset.compression, dataset.max_spot_count, dataset.series_id) == ("none", 100, 3)
    assert experiment.crystal.space_group_number == 19
    assert isinstance(experiment.scan, GridScan) and experiment.scan.n_slow == 3


def test_the_broker_chooses_the_data_file_size_when_none_is_given():
    sweep = experiment_from_broker_settings(
        DATASET | {"ntrigger": 3600, "goniometer": {"step": 0.1, "vector": [-1, 0, 0]}}
    )
    assert isinstance(sweep.scan, RotationScan) and sweep.dataset.images_per_file == 3600
    stills = experiment_from_broker_settings(DATASET | {"ntrigger": 3600})
    assert stills.dataset.images_per_file == 1000
    grid = experiment_from_broker_settings(
        DATASET | {"ntrigger": 1000, "grid_scan": {"n_fast": 30, "step_x_um": 5, "step_y_um": 5}}
    )
    assert isinstance(grid.scan, GridScan)
    assert (grid.scan.n_slow, grid.dataset.images_per_file) == (34, 990)  # whole rows


def test_settings_keep_the_socket_address_and_refuse_what_jfsim_cannot_do():
    store = SettingsStore(preview_endpoint="tcp://127.0.0.1:5400")
    store.put("zeromq_preview", jc.ZeromqPreviewSettings(enabled=True, period_ms=0))
    assert store.get("zeromq_preview").socket_address == "tcp://127.0.0.1:5400"
    with pytest.raises(BadRequest, match=r"ZeromqMetadataSettings\.socket_address: needed"):
        store.put("zeromq_metadata", jc.ZeromqMetadataSettings(enabled=True, period_ms=10))
    with pytest.raises(BadRequest, match="not a ZeroMQ address"):
        store.put(
            "zeromq_preview",
            jc.ZeromqPreviewSettings(enabled=True, period_ms=0, socket_address="http://x"),
        )
    with pytest.raises(BadRequest, match=r"only tcp://HOST:PORT can be set over HTTP"):
        store.put(
            "zeromq_preview",
            jc.ZeromqPreviewSettings(enabled=True, period_ms=0, socket_address="ipc:///tmp/x"),
        )
    with pytest.raises(NotEmulated, match="NXmxOnlyData"):
        store.put("file_writer", jc.FileWriterSettings(format=jc.FileWriterFormat.NXMXONLYDATA))
    assert store.get("file_writer").format == jc.FileWriterFormat.NXMXVDS  # unchanged


def test_the_state_machine_refuses_atomically_and_wakes_waiters():
    machine = StateMachine()
    with pytest.raises(WrongState, match=r"/start: the detector is Inactive.*/initialize"):
        machine.transition([BrokerState.IDLE], BrokerState.BUSY, "/start")
    assert machine.transition([BrokerState.INACTIVE], BrokerState.IDLE, "/initialize") == (
        BrokerState.INACTIVE
    )
    assert machine.wait_until(lambda s: s is BrokerState.MEASURING, 0.01) is None
    machine.transition([BrokerState.IDLE], BrokerState.BUSY, "/start")
    waker = threading.Timer(0.05, machine.move, args=(BrokerState.MEASURING,))
    waker.start()
    assert machine.wait_until(lambda s: s is not BrokerState.BUSY, 30) is BrokerState.MEASURING
    waker.join()
    machine.move(BrokerState.ERROR, "no writer")
    assert machine.snapshot() == (BrokerState.ERROR, "no writer", "error")


def _pool_of_two() -> list[PoolFrame]:
    pixels = [np.full((4, 6), value, dtype=np.int16) for value in (3, 5)]
    pixels[1][0, 0] = -32768  # an error pixel
    analysis = [
        {"spot_count": 10, "indexing_result": True, "spots": [{"indexed": True}] * 4},
        {"spot_count": 2, "indexing_result": False, "spots": []},
    ]
    return [
        PoolFrame(PixelArray.from_numpy(p, Compression.BSLZ4), a)
        for p, a in zip(pixels, analysis, strict=True)
    ]


def test_plots_bin_the_images_sent_and_fill_the_rest():
    from jfsim.detectors import detector_preset

    metrics = FrameMetrics(_pool_of_two(), detector_preset("JF1M"))
    sent = np.array([True, True, True, False, True])  # image 3 was dropped
    view = SeriesView(sent=sent, metrics=metrics, rotation_start_deg=5.0, rotation_step_deg=0.5)
    spots = make_plots("spot_count", view, binning=2, fill=-1.0)
    assert spots.plot[0].x == [0.5, 2.5, 4.0]
    assert spots.plot[0].y == [6.0, 10.0, 10.0]  # (10+2)/2, image 2 only, image 4
    single = make_plots("spot_count", view, binning=1, fill=-1.0)
    assert single.plot[0].y[3] == -1.0
    rate = make_plots("indexing_rate", view, binning=5, experimental_coord=True)
    assert rate.unit_x == jc.PlotUnitX.ANGLE_DEG and rate.plot[0].x == [6.0]
    assert rate.plot[0].y == [0.75]
    background = make_plots("bkg_estimate", view, binning=1)
    assert background.plot[0].y[:2] == [3.0, 5.0]  # the error pixel is left out
    errors = make_plots("error_pixels", view, binning=1)
    assert errors.plot[0].y[:2] == [0.0, 1.0]
    assert math.isclose(metrics.compression_ratio, metrics.compression_ratio)
    with pytest.raises(BadRequest, match="type 'azint': jfsim has no such plot"):
        make_plots("azint", view)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "int32", "uint32", "uint8"])
def test_the_tiff_reads_back_with_tifffile(dtype: str):
    image = (np.arange(12 * 7).reshape(12, 7) * 97 - 300).astype(dtype)
    assert np.array_equal(tifffile.imread(io.BytesIO(tiff_bytes(image))), image)
