"""The reference analysis, per image: spot finding, azimuthal integration, ROIs, pixel
statistics (jfsim process, analysis.md §2), on a CPU (numba) or GPU (numba.cuda) engine.

Entry points: :func:`process_run` (a run's master file → ``<prefix>_process.h5``, what
``jfsim process`` does), :class:`ProcessSettings` (the broker's settings models in one
validated JSON document), :func:`open_run` + :func:`analysis_plan` + :class:`ImageAnalyser`
(analyse frames one by one from Python). One module per analysis (``spot_finding``,
``azimuthal``, ``roi``, ``pixel_statistics``); engines in ``engines/``; the file in
``process_file``. Pixel coordinates of results are indices (first pixel's centre at 0), as
CXI peak lists and the wire use.
"""

from jfsim.analysis.analyse import DEVICES, ImageAnalyser, select_engine
from jfsim.analysis.errors import AnalysisInputError, FrameError, SettingsError
from jfsim.analysis.frames import FrameReader
from jfsim.analysis.nxmx_run import NxmxRun, open_run
from jfsim.analysis.plan import AnalysisPlan, analysis_plan
from jfsim.analysis.process import ProcessSummary, process_run
from jfsim.analysis.process_file import process_file_path, settings_from_process_file
from jfsim.analysis.result import ImageAnalysis, SkippedImage
from jfsim.analysis.settings import ImageSelection, ProcessSettings

__all__ = [
    "DEVICES",
    "AnalysisInputError",
    "AnalysisPlan",
    "FrameError",
    "FrameReader",
    "ImageAnalyser",
    "ImageAnalysis",
    "ImageSelection",
    "NxmxRun",
    "ProcessSettings",
    "ProcessSummary",
    "SettingsError",
    "SkippedImage",
    "analysis_plan",
    "open_run",
    "process_file_path",
    "process_run",
    "select_engine",
    "settings_from_process_file",
]
