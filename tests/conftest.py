"""Shared fixtures: a tiny synthetic world and a helper that composes the real Hydra config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
TINY_CUSTOMERS = 800


@pytest.fixture(scope="session")
def tiny_world():
    from deepromo.data.sources.synthetic import generate_world

    return generate_world(n_customers=TINY_CUSTOMERS, seed=0)


def tiny_splc(world, epochs: int = 1):
    """A tiny splc model (trained for ``epochs``; 0 = untrained) with its preprocessor, and its datamodule."""
    import pytorch_lightning as pl

    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.views import build_view
    from deepromo.models.registry import get_model_class

    pl.seed_everything(0, verbose=False)
    dm = PromoDataModule(build_view("customer", world), batch_size=128, seed=0)
    dm.setup()
    cls = get_model_class("splc")
    model = cls(dm.spec, **cls.tiny_params, **cls.hparams_from_data(dm))
    model.preprocessor = dm.preprocessor
    if epochs:
        pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False).fit(model, datamodule=dm)
    return model, dm


def compose_config(overrides: list[str], output_dir: Path):
    """The same config train.py builds, with tiny-run overrides and an explicit output folder."""
    from deepromo.config import compose_train_config

    base = [
        f"data.options.n_customers={TINY_CUSTOMERS}",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"paths.output_dir={output_dir}",
    ]
    return compose_train_config(base + list(overrides))


@pytest.fixture
def make_config(tmp_path):
    def _make(*overrides: str):
        return compose_config(list(overrides), tmp_path / "run")

    return _make
