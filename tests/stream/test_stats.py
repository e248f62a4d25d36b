"""Gap statistics: exact mean and max, p99 within the histogram's 0.5 % bins."""

from __future__ import annotations

import numpy as np
import pytest

from jfsim.stream.stats import GapHistogram, StreamStats


def test_percentiles_match_numpy_within_the_bin_width():
    gaps = np.random.default_rng(5).lognormal(mean=np.log(5e-4), sigma=0.6, size=20_000)
    histogram = GapHistogram()
    for gap in gaps:
        histogram.add(float(gap))
    assert histogram.count == 20_000
    assert histogram.mean_s == pytest.approx(gaps.mean(), rel=1e-9)
    assert histogram.max_s == gaps.max()
    for percent in (50.0, 99.0):
        assert histogram.percentile_s(percent) == pytest.approx(
            np.percentile(gaps, percent), rel=0.011
        )


def test_extreme_gaps_are_kept_in_the_edge_bins():
    histogram = GapHistogram()
    histogram.add(0.0)
    histogram.add(5000.0)
    assert histogram.percentile_s(100.0) == 5000.0
    assert histogram.percentile_s(10.0) == GapHistogram.MIN_GAP_S


def test_summary_counts_rate_and_bytes():
    stats = StreamStats(n_sockets=2, images_total=5)
    for k in range(4):
        stats.record_sent(10.0 + k * 0.001, 1000, k % 2)
    stats.record_dropped()
    stats.record_blocked()
    summary = stats.summary(
        endpoints=("a", "b"), target_rate_hz=1000.0, pool_size=2, end_delivered=(True, True)
    )
    assert summary.images_sent == 4 and summary.images_dropped == 1
    assert summary.sends_blocked == 1
    assert summary.achieved_rate_hz == pytest.approx(1000.0)
    assert summary.mean_gap_ms == pytest.approx(1.0)
    assert summary.images_per_socket == (2, 2)
    assert summary.to_dict()["end_delivered"] == [True, True]
