"""Shared fixtures: a tiny synthetic world and a helper that composes the real Hydra config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
TINY_CUSTOMERS = 800


@pytest.fixture(scope="session")
def tiny_world():
    from deepromo.data.sources.synthetic import generate_world

    return generate_world(n_customers=TINY_CUSTOMERS, seed=0)


def compose_config(overrides: list[str], output_dir: Path):
    """The same config train.py builds, with tiny-run overrides and an explicit output folder."""
    from hydra import compose, initialize_config_dir

    base = [
        f"data.options.n_customers={TINY_CUSTOMERS}",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"paths.output_dir={output_dir}",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=base + list(overrides))


@pytest.fixture
def make_config(tmp_path):
    def _make(*overrides: str):
        return compose_config(list(overrides), tmp_path / "run")

    return _make
