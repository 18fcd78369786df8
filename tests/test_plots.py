"""Plots write non-trivial PNG files."""

import numpy as np

from deepromo.metrics import cumulative_gain_curve
from deepromo.reporting.plots import plot_gain_curves


def test_plot_gain_curves(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    curves = {"model": cumulative_gain_curve(y, y + rng.normal(size=200)), "rfm": cumulative_gain_curve(y, rng.normal(size=200))}
    out = plot_gain_curves(curves, tmp_path / "sub" / "gain.png", perfect=cumulative_gain_curve(y, y))
    assert out.exists() and out.stat().st_size > 5000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

