"""The experiment description: what jfsim pretends to measure.

An ``Experiment`` is a tree of frozen dataclasses in canonical units (mm, Å, keV, radians,
seconds). It comes from three places, all read by this package and nowhere else:

* a TOML (or JSON) file whose keys carry their unit in the name (``distance_mm``,
  ``energy_keV``, ``mosaicity_deg``); a value may also be a string with an explicit unit of
  the same kind (``distance_mm = "0.12 m"``) — ``loading.py``;
* the JSON body a user sends to jfjoch_broker's ``/start`` (DatasetSettings names such as
  ``beam_x_pxl``, ``detector_distance_mm``, ``incident_energy_keV``) plus a detector preset
  — ``broker.py``;
* the named experiment presets bundled in ``jfsim/data/presets`` — ``presets.py``.

Unknown keys, out-of-range values and values of the wrong kind of unit are rejected with a
``ConfigError`` that names the section and key. The keys are declared once, on the fields of
the model's dataclasses (``model.py``, ``keys.py``): adding a field there adds the key.
"""

from jfsim.detectors import DETECTOR_PRESETS, Detector, Module, detector_preset
from jfsim.experiment.broker import experiment_from_broker_settings, load_broker_settings
from jfsim.experiment.loading import experiment_from_dict, experiment_to_dict, load_experiment
from jfsim.experiment.model import (
    Background,
    Beam,
    Crystal,
    Dataset,
    DetectorPosition,
    ENERGY_RANGE_keV,
    Experiment,
    GridScan,
    RotationScan,
    Scan,
    StillsScan,
    UnitCell,
    detector_panel,
)
from jfsim.experiment.presets import (
    experiment_preset,
    experiment_preset_names,
    experiment_preset_summary,
)

__all__ = [
    "DETECTOR_PRESETS",
    "Background",
    "Beam",
    "Crystal",
    "Dataset",
    "Detector",
    "DetectorPosition",
    "ENERGY_RANGE_keV",
    "Experiment",
    "GridScan",
    "Module",
    "RotationScan",
    "Scan",
    "StillsScan",
    "UnitCell",
    "detector_panel",
    "detector_preset",
    "experiment_from_broker_settings",
    "experiment_from_dict",
    "experiment_preset",
    "experiment_preset_names",
    "experiment_preset_summary",
    "experiment_to_dict",
    "load_broker_settings",
    "load_experiment",
]
