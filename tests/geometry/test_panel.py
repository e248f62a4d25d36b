"""Panel geometry: pixel ⇄ lab ⇄ reciprocal round trips, PONI conversions, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jfsim.geometry import Poni, panel_from_poni, panel_from_position, poni_from_panel

PIXEL_MM = 0.075


def _tilted_panel(rot1: float, rot2: float, rot3: float):
    return panel_from_position(
        distance_mm=120.0,
        beam_x_pxl=1034.25,
        beam_y_pxl=1082.75,
        pixel_size_mm=PIXEL_MM,
        width_pxl=2068,
        height_pxl=2164,
        poni_rot1_rad=rot1,
        poni_rot2_rad=rot2,
        poni_rot3_rad=rot3,
    )


def test_default_orientation_puts_the_beam_centre_on_the_beam() -> None:
    panel = _tilted_panel(0.0, 0.0, 0.0)
    assert panel.fast == pytest.approx((-1.0, 0.0, 0.0))
    assert panel.slow == pytest.approx((0.0, -1.0, 0.0))
    assert panel.origin_mm == pytest.approx((1034.25 * PIXEL_MM, 1082.75 * PIXEL_MM, 120.0))
    assert panel.pixel_to_lab_mm(1034.25, 1082.75) == pytest.approx([0.0, 0.0, 120.0], abs=1e-12)
    # the centre of pixel (0, 0) is half a pixel from the outer corner along both axes
    corner = np.asarray(panel.origin_mm)
    centre = panel.pixel_to_lab_mm(0.5, 0.5)
    assert centre - corner == pytest.approx([-0.5 * PIXEL_MM, -0.5 * PIXEL_MM, 0.0])
    x, y, hit = panel.ray_to_pixel(np.array([0.0, 0.0, 1.0]))
    assert bool(hit) and (float(x), float(y)) == pytest.approx((1034.25, 1082.75))


@pytest.mark.parametrize("rotations", [(0.0, 0.0, 0.0), (0.05, -0.1, 0.3), (-0.3, 0.2, -1.2)])
def test_pixel_to_lab_to_pixel_is_identity(rotations: tuple[float, float, float]) -> None:
    panel = _tilted_panel(*rotations)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 2068, 500)
    y = rng.uniform(0, 2164, 500)
    back_x, back_y = panel.lab_to_pixel(panel.pixel_to_lab_mm(x, y))
    np.testing.assert_allclose(back_x, x, atol=1e-9)
    np.testing.assert_allclose(back_y, y, atol=1e-9)


@pytest.mark.parametrize("rotations", [(0.0, 0.0, 0.0), (0.1, 0.2, 0.3), (-0.2, 0.05, -1.0)])
def test_pixel_to_reciprocal_to_pixel_is_identity(rotations: tuple[float, float, float]) -> None:
    panel = _tilted_panel(*rotations)
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 2068, 200)
    y = rng.uniform(0, 2164, 200)
    r = panel.pixel_to_reciprocal(x, y, 0.9)
    # every such vector is on the Ewald sphere: |s0 + r| = 1/λ
    np.testing.assert_allclose(
        np.linalg.norm(r + np.array([0, 0, 1 / 0.9]), axis=1), 1 / 0.9, rtol=1e-12
    )
    back_x, back_y, hits = panel.reciprocal_to_pixel(r, 0.9)
    assert hits.all()
    np.testing.assert_allclose(back_x, x, atol=1e-8)
    np.testing.assert_allclose(back_y, y, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_poni_to_panel_to_poni_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    poni = Poni(
        dist_mm=float(rng.uniform(50, 300)),
        poni1_mm=float(rng.uniform(0, 160)),
        poni2_mm=float(rng.uniform(0, 160)),
        rot1_rad=float(rng.uniform(-0.5, 0.5)),
        rot2_rad=float(rng.uniform(-0.5, 0.5)),
        rot3_rad=float(rng.uniform(-3.0, 3.0)),
    )
    panel = panel_from_poni(poni, PIXEL_MM, 2068, 2164)
    back = poni_from_panel(panel)
    for name in ("dist_mm", "poni1_mm", "poni2_mm", "rot1_rad", "rot2_rad", "rot3_rad"):
        assert getattr(back, name) == pytest.approx(getattr(poni, name), abs=1e-9), name
    again = panel_from_poni(back, PIXEL_MM, 2068, 2164)
    np.testing.assert_allclose(again.origin_mm, panel.origin_mm, atol=1e-9)
    np.testing.assert_allclose(again.fast, panel.fast, atol=1e-12)
    np.testing.assert_allclose(again.slow, panel.slow, atol=1e-12)
    assert np.dot(panel.fast, panel.slow) == pytest.approx(0.0, abs=1e-12)
    assert panel.distance_mm == pytest.approx(poni.dist_mm)


def test_direct_beam_follows_pyfai_formula_for_rot1_and_rot2() -> None:
    """pyFAI (rot3 = 0): the beam hits fast = (poni2 − L·tan rot1)/p and
    slow = (poni1 + L·tan rot2 / cos rot1)/p (physics.md §2.1)."""
    dist, poni1, poni2, rot1, rot2 = 150.0, 80.0, 77.0, 0.12, -0.07
    panel = panel_from_poni(Poni(dist, poni1, poni2, rot1, rot2, 0.0), PIXEL_MM, 2068, 2164)
    x, y, _ = panel.ray_to_pixel(np.array([0.0, 0.0, 1.0]))
    assert float(x) == pytest.approx((poni2 - dist * math.tan(rot1)) / PIXEL_MM, rel=1e-9)
    assert float(y) == pytest.approx(
        (poni1 + dist * math.tan(rot2) / math.cos(rot1)) / PIXEL_MM, rel=1e-9
    )
    beam_spot = panel.pixel_to_lab_mm(x, y)
    assert np.linalg.norm(beam_spot) == pytest.approx(dist / (math.cos(rot1) * math.cos(rot2)))


def test_two_theta_matches_pyfai_coordinates() -> None:
    """2θ of a pixel from our lab vectors equals pyFAI's atan2(√(t1² + t2²), t3)."""
    dist, poni1, poni2, rot1, rot2, rot3 = 100.0, 70.0, 60.0, 0.1, 0.2, 0.3
    panel = panel_from_poni(Poni(dist, poni1, poni2, rot1, rot2, rot3), PIXEL_MM, 2068, 2164)
    col, row = 1500.0, 300.0
    p1, p2 = (row + 0.5) * PIXEL_MM, (col + 0.5) * PIXEL_MM
    d1, d2 = p1 - poni1, p2 - poni2
    c1, s1 = math.cos(rot1), math.sin(rot1)
    c2, s2 = math.cos(rot2), math.sin(rot2)
    c3, s3 = math.cos(rot3), math.sin(rot3)
    t1 = d1 * c2 * c3 + d2 * (c3 * s1 * s2 - c1 * s3) - dist * (c1 * c3 * s2 + s1 * s3)
    t2 = d1 * c2 * s3 + d2 * (c1 * c3 + s1 * s2 * s3) - dist * (c1 * s2 * s3 - c3 * s1)
    t3 = d1 * s2 - d2 * c2 * s1 + dist * c1 * c2
    lab = panel.pixel_to_lab_mm(col + 0.5, row + 0.5)
    ours = math.acos(lab[2] / np.linalg.norm(lab))
    assert ours == pytest.approx(math.atan2(math.hypot(t1, t2), t3), rel=1e-12)
    assert np.linalg.norm(lab) == pytest.approx(math.sqrt(t1 * t1 + t2 * t2 + t3 * t3))
