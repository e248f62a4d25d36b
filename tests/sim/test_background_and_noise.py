"""Background model and the counter-based Poisson noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfsim.experiment import Background
from jfsim.geometry import panel_from_position
from jfsim.sim.background import WATER_RING_D_A, background_image
from jfsim.sim.engines import cpu
from jfsim.sim.frame import FramePlan, SpotList
from jfsim.sim.noise import INVERSION_LIMIT, build_pixel_functions, frame_key


def test_water_ring_peaks_at_its_radius() -> None:
    pixel_mm, distance_mm, wavelength_A = 0.075, 100.0, 1.0
    panel = panel_from_position(
        distance_mm=distance_mm,
        beam_x_pxl=600.0,
        beam_y_pxl=600.0,
        pixel_size_mm=pixel_mm,
        width_pxl=1200,
        height_pxl=1200,
    )
    water_only = Background(constant_photons=0.0, water_ring_photons=5.0, air_scatter_photons=0.0)
    image = background_image(water_only, panel, wavelength_A, polarization_factor=0.0)
    # along the vertical line through the beam (polarisation 0 is symmetric there)
    column = image[600:, 600].astype(np.float64)
    radius_pxl = np.arange(column.shape[0]) + 0.5
    peak_pxl = radius_pxl[np.argmax(column)]
    two_theta = 2.0 * math.asin(wavelength_A / (2.0 * WATER_RING_D_A))
    expected_pxl = distance_mm * math.tan(two_theta) / pixel_mm
    # the cos³α solid-angle factor pulls the peak inwards by a few pixels only
    assert peak_pxl == pytest.approx(expected_pxl, rel=0.02)
    # amplitude × cos³(2θ) solid angle × unpolarised (1 + cos²2θ)/2 at the ring
    attenuation = math.cos(two_theta) ** 3 * 0.5 * (1 + math.cos(two_theta) ** 2)
    assert column.max() == pytest.approx(5.0 * attenuation, rel=0.01)


def test_ice_rings_add_sharp_rings() -> None:
    panel = panel_from_position(
        distance_mm=100.0,
        beam_x_pxl=300.0,
        beam_y_pxl=300.0,
        pixel_size_mm=0.075,
        width_pxl=1000,
        height_pxl=1000,
    )
    plain = Background(constant_photons=0.1, water_ring_photons=0.0, air_scatter_photons=0.0)
    icy = Background(
        constant_photons=0.1, water_ring_photons=0.0, air_scatter_photons=0.0, ice_rings=True
    )
    base = background_image(plain, panel, 1.0, 0.0)
    with_ice = background_image(icy, panel, 1.0, 0.0)
    np.testing.assert_allclose(base, 0.1, rtol=1e-6)
    # the 3.44 Å ring (the strongest) at 100 mm, 1 Å
    ring_pxl = 100.0 * math.tan(2.0 * math.asin(1.0 / (2 * 3.44))) / 0.075
    assert with_ice[300 + round(ring_pxl), 300] > 2.0
    assert with_ice[300 + round(ring_pxl) - 40, 300] < 0.5


@pytest.mark.parametrize("mean", [0.05, 1.5, 2.5, 20.0, 200.0])
def test_background_pixels_obey_poisson_statistics(mean: float) -> None:
    shape = (256, 256)
    plan = FramePlan(
        background_photons=np.full(shape, mean, dtype=np.float32),
        pixel_class=np.zeros(shape, dtype=np.uint8),
        image_dtype=np.dtype("<i4"),
        saturation_value=2**31 - 1,
        error_value=-(2**31),
        seed=11,
    )
    counts = cpu.run(cpu.prepare(plan), SpotList.empty(), image_id=0).astype(np.float64)
    n = counts.size
    assert counts.mean() == pytest.approx(mean, abs=5 * math.sqrt(mean / n))
    # variance of a sample variance ≈ (2σ⁴ + κ₄)/n; allow five standard errors
    assert counts.var() == pytest.approx(mean, abs=5 * math.sqrt((2 * mean**2 + mean) / n))
    if mean < 5:  # the inversion branch: the whole distribution, k = 0..10
        for k in range(11):
            pmf = math.exp(-mean) * mean**k / math.factorial(k)
            assert np.mean(counts == k) == pytest.approx(pmf, abs=5 * math.sqrt(pmf / n) + 1e-5)
    assert counts.min() >= 0


def test_uniforms_are_uniform_and_independent_of_order() -> None:
    python = build_pixel_functions(lambda function: function)
    key = frame_key(1, 2)
    with np.errstate(over="ignore"):
        forwards = [python.uniform_open(key, np.uint64(i)) for i in range(4000)]
        backwards = [python.uniform_open(key, np.uint64(i)) for i in reversed(range(4000))]
    assert forwards == backwards[::-1]
    values = np.array(forwards)
    assert 0.0 < values.min() and values.max() < 1.0
    histogram, _ = np.histogram(values, bins=10, range=(0, 1))
    assert histogram.min() > 330 and histogram.max() < 470


def test_compiled_cpu_pixels_equal_the_pure_python_oracle() -> None:
    """The numba-compiled per-pixel rules equal the same functions run as plain Python."""
    shape = (24, 20)
    rng = np.random.default_rng(1)
    background = rng.uniform(0.0, 3.0 * INVERSION_LIMIT, shape).astype(np.float32)
    classes = np.zeros(shape, dtype=np.uint8)
    classes[:, 7] = 2
    classes[5, :] = 1
    plan = FramePlan(background, classes, np.dtype("<i2"), 60, -32768, seed=9)
    spots = SpotList(
        np.array([10.2, 3.7]), np.array([12.6, 20.1]), np.array([0.8, 1.3]), np.array([500.0, 80.0])
    )
    prepared = cpu.prepare(plan)
    pixels = cpu.run(prepared, spots, image_id=4)
    expected = cpu.expectation(prepared, spots)
    python = build_pixel_functions(lambda function: function)
    key = frame_key(9, 4)
    with np.errstate(over="ignore"):
        oracle = np.array(
            [
                [
                    python.pixel_value(
                        float(expected[r, c]),
                        int(classes[r, c]),
                        key,
                        np.uint64(r * 20 + c),
                        60,
                        -32768,
                        True,
                    )
                    for c in range(shape[1])
                ]
                for r in range(shape[0])
            ]
        )
    np.testing.assert_array_equal(pixels, oracle)
    assert np.all(pixels[5, :] == -32768) and np.all(pixels[np.arange(24) != 5, 7] == 0)
    assert pixels.max() == 60  # saturation clip


def test_noise_bank_reuses_background_and_redraws_spot_windows() -> None:
    shape = (64, 64)
    plan = FramePlan(
        np.full(shape, 1.5, dtype=np.float32),
        np.zeros(shape, dtype=np.uint8),
        np.dtype("<i2"),
        32767,
        -32768,
        seed=2,
    )
    spots = SpotList(np.array([20.5]), np.array([30.5]), np.array([1.0]), np.array([5000.0]))
    banked = cpu.prepare(plan, cpu.CpuOptions(noise_bank_frames=2))
    fresh = cpu.prepare(plan)
    frame_0 = cpu.run(banked, spots, 0)
    frame_2 = cpu.run(banked, spots, 2)
    half = int(spots.window_half_width_pxl()[0])
    window = (slice(30 - half, 30 + half + 1), slice(20 - half, 20 + half + 1))
    outside = np.ones(shape, bool)
    outside[window] = False
    # background outside spot windows repeats with the bank period ...
    np.testing.assert_array_equal(frame_0[outside], frame_2[outside])
    # ... while spot windows get the frame's own draws, as with fresh noise
    fresh_0 = cpu.run(fresh, spots, 0)
    np.testing.assert_array_equal(frame_0[window], fresh_0[window])
    assert np.count_nonzero(frame_0[window] != frame_2[window]) > 10
    n_window = (2 * half + 1) ** 2
    assert abs(int(frame_0[window].sum()) - 5000 - 1.5 * n_window) < 5 * math.sqrt(5300)
