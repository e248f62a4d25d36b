"""The CPU engine's one pass over a frame against numpy, accumulator by accumulator.

The pass only counts small values per key and sums the others; where that split falls
depends on the photon threshold, the error and saturation values and the number of bins.
Each case below moves it, and every integer the pass gives must equal numpy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from jfsim.analysis.azimuthal import AZ_LOST, AZ_SUM, AZ_SUM_SQ
from jfsim.analysis.engines import cpu
from jfsim.analysis.pixel_statistics import (
    BKG_BAND,
    STAT_BAND_LOST,
    STAT_BAND_SUM,
    STAT_ERROR,
    STAT_MAX,
    STAT_MIN,
    STAT_NONZERO,
    STAT_SATURATED,
    STAT_SUM,
)
from jfsim.analysis.roi import ROI_LOST, ROI_NONZERO, ROI_SUM
from jfsim.analysis.settings import ProcessSettings
from tests.analysis.synthetic import synthetic_plan

SHAPE = (120, 160)


@dataclass(frozen=True)
class Case:
    """A pixel type with its sentinels, a photon threshold and a bin spacing."""

    dtype: type
    error: int
    saturation: int
    threshold: int
    levels: int  # values the pass only counts
    q_spacing: float = 0.05


CASES = {
    "jungfrau-defaults": Case(np.int16, -32768, 32767, 10, levels=8),
    "weak-spots-threshold": Case(np.int16, -32768, 32767, 3, levels=4),
    "threshold-0": Case(np.int16, -32768, 32767, 0, levels=1),
    "eiger-uint32": Case(np.uint32, 2**32 - 1, 2**32 - 2, 10, levels=8),
    "low-saturation": Case(np.uint16, 2**16 - 1, 5, 10, levels=5),
    "error-is-zero": Case(np.uint16, 0, 60000, 10, levels=0),
    "too-many-bins-to-count": Case(np.int16, -32768, 32767, 10, levels=0, q_spacing=5e-5),
}


BOX = {"name": "box", "min_x_pxl": 5, "max_x_pxl": 90, "min_y_pxl": 10, "max_y_pxl": 70}


def _frame(case: Case, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.poisson(1.2, size=SHAPE) + (rng.random(SHAPE) < 0.02) * rng.integers(5, 400, SHAPE)
    if np.issubdtype(case.dtype, np.signedinteger):
        values -= rng.random(SHAPE) < 0.05  # JUNGFRAU: a few negatives
    frame = values.astype(case.dtype)
    frame[rng.random(SHAPE) < 0.01] = case.error
    frame[rng.random(SHAPE) < 0.005] = case.saturation
    frame[rng.random(SHAPE) < 0.005] = min(case.saturation + 1, np.iinfo(case.dtype).max)
    return frame


def _valid() -> np.ndarray:
    valid = np.ones(SHAPE, dtype=bool)
    valid[:, 77:80] = False
    valid[30, 5:50] = False
    return valid


def _sum_by(bins: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, bins, values)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_pass_equals_numpy(name: str) -> None:
    case = CASES[name]
    settings = ProcessSettings.from_mapping(
        {
            "spot_finding": {"photon_count_threshold": case.threshold},
            "azim_int": {"q_spacing": case.q_spacing, "azimuthal_bins": 2},
            "roi": {"box": {"rois": [BOX]}},
        }
    )
    plan = synthetic_plan(
        settings,
        valid=_valid(),
        image_dtype=case.dtype,
        error_value=case.error,
        saturation_value=case.saturation,
    )
    prepared = cpu.prepare(plan)
    assert prepared.levels == case.levels
    n_bins = plan.azimuthal.n_bins
    for seed in (1, 2):
        frame = _frame(case, seed)
        passed = cpu.pixel_pass(prepared, frame.reshape(-1))

        values = frame.astype(np.int64)
        sensitive = _valid()
        error = sensitive & (values == case.error)
        saturated = sensitive & (values >= case.saturation) & ~error
        viable = sensitive & ~error & ~saturated
        band = (plan.pixel_class & BKG_BAND) != 0
        stats = passed.stats
        assert stats[STAT_ERROR] == error.sum() > 0
        assert stats[STAT_SATURATED] == saturated.sum() > 0
        assert stats[STAT_MIN] == values[viable].min()
        assert stats[STAT_MAX] == values[viable].max()
        assert stats[STAT_SUM] == values[viable].sum()
        assert stats[STAT_BAND_SUM] == values[viable & band].sum()
        assert stats[STAT_BAND_LOST] == ((error | saturated) & band).sum()
        assert stats[STAT_NONZERO] == viable.sum()

        bin_map = plan.azimuthal.bin_map
        binned = viable & (bin_map >= 0)
        lost = (error | saturated) & (bin_map >= 0)
        azimuthal = passed.azimuthal
        assert n_bins > 40_000 if name == "too-many-bins-to-count" else n_bins < 1000
        np.testing.assert_array_equal(
            azimuthal[:, AZ_SUM], _sum_by(bin_map[binned], values[binned], n_bins)
        )
        np.testing.assert_array_equal(
            azimuthal[:, AZ_SUM_SQ], _sum_by(bin_map[binned], values[binned] ** 2, n_bins)
        )
        np.testing.assert_array_equal(
            azimuthal[:, AZ_LOST], np.bincount(bin_map[lost], minlength=n_bins)
        )
        correction = plan.azimuthal.correction.astype(np.float64)
        np.testing.assert_allclose(
            passed.lost_correction,
            np.bincount(bin_map[lost], weights=correction[lost], minlength=n_bins),
            rtol=1e-12,
        )

        above = np.flatnonzero(viable & (values > case.threshold))
        assert passed.candidates == above.size
        assert above.size > 0 or case.saturation <= case.threshold + 1  # none can be viable
        np.testing.assert_array_equal(prepared.candidates[: above.size], above)

        box = np.zeros(SHAPE, dtype=bool)
        box[10:71, 5:91] = True
        roi = passed.rois[0]
        assert roi[ROI_SUM] == values[box & viable].sum()
        assert roi[ROI_NONZERO] == (box & viable).sum()
        assert roi[ROI_LOST] == (box & (error | saturated)).sum() > 0


def test_a_full_candidate_list_is_counted_and_truncated() -> None:
    """More pixels above the threshold than the list holds: the count goes on, the list
    keeps the first ones (row-major), and the engine reports the image as truncated."""
    plan = synthetic_plan(
        ProcessSettings.from_mapping({"spot_finding": {"photon_count_threshold": 0}})
    )
    prepared = cpu.prepare(plan, cpu.CpuOptions(max_candidates=100))
    frame = np.ones(SHAPE, dtype=np.int16)
    output = cpu.run(prepared, frame)
    assert output.candidates == frame.size
    assert output.truncated
    np.testing.assert_array_equal(prepared.candidates, np.arange(100))


def test_threads_preparing_one_plan_share_its_offset_map() -> None:
    """The per-pixel map is built once per plan and shared read-only (one 9 MB copy for a
    JF4M run however many threads); another plan gets its own."""
    plan = synthetic_plan(ProcessSettings())
    first, second = cpu.prepare(plan), cpu.prepare(plan)
    assert first.offsets is second.offsets
    assert not first.offsets.flags.writeable
    keys, _ = cpu.pixel_keys(plan)
    np.testing.assert_array_equal(first.offsets, keys.astype(np.int64) * 8)
    other = cpu.prepare(synthetic_plan(ProcessSettings()))
    assert other.offsets is not first.offsets
