"""Shared fixtures: a tiny synthetic world and a helper that composes the real Hydra config."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
TINY_CUSTOMERS = 800
HILLSTROM_ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")


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
    model = cls.from_datamodule(dm, **cls.test_params[0])
    if epochs:
        pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False).fit(model, datamodule=dm)
    return model, dm


def compose_config(overrides: list[str], output_dir: Path):
    """The same config train.py builds for ``debug=tiny`` (a small world, two epochs, no tracker), with an
    explicit output folder."""
    from deepromo.jobs.config import compose_train_config

    return compose_train_config(["debug=tiny", f"paths.output_dir={output_dir}", *overrides])


def model_variants() -> list[tuple[str, int]]:
    """(model name, index into its ``test_params``) for every registered model and parameter set."""
    import deepromo

    return [(name, i) for name in deepromo.list_models()
            for i in range(len(deepromo.get_model_class(name).test_params))]


MODEL_VARIANTS = model_variants()


def param_overrides(params: dict, prefix: str = "model.params") -> list[str]:
    """Hydra command-line overrides setting ``params`` (plain values) under ``prefix``."""
    import json

    return [f"{prefix}.{key}={value if isinstance(value, str) else json.dumps(value).replace(chr(34), '')}"
            for key, value in params.items()]


_JOBS: dict = {}


def tiny_job(name: str, tmp_path_factory, *extra: str):
    """(results, run folder) of train.py's job for model ``name`` at ``debug=tiny`` and its first test
    parameters; run once per session and argument list, shared by the tests that read it."""
    import deepromo
    from deepromo.jobs.train import run

    key = (name, extra)
    if key not in _JOBS:
        out = tmp_path_factory.mktemp(f"job_{name}") / "run"
        params = deepromo.get_model_class(name).test_params[0]
        _JOBS[key] = run(compose_config([f"model={name}", *param_overrides(params), *extra], out)), out
    return _JOBS[key]


def by_customer(df: pd.DataFrame, col: str) -> dict:
    """{customer_id: value of ``col``} of a canonical table (hand-checked mappings read by customer)."""
    return dict(zip(df["customer_id"].tolist(), df[col].tolist()))


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store in ``tmp_path`` for this test (environment and MLflow's global URI), reset
    afterwards: its URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def make_config(tmp_path):
    def _make(*overrides: str):
        return compose_config(list(overrides), tmp_path / "run")

    return _make


def write_fake_hillstrom(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A Hillstrom-format CSV (same columns and spellings, CRLF) whose e-mail lifts visits of recent buyers."""
    rng = np.random.default_rng(seed)
    history = np.round(rng.gamma(2.0, 120.0, n) + 29.99, 2)
    bins = [0, 100, 200, 350, 500, 750, 1000, np.inf]
    labels = ["1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500", "5) $500 - $750",
              "6) $750 - $1,000", "7) $1,000 +"]
    recency = rng.integers(1, 13, n)
    segment = rng.choice(HILLSTROM_ARMS, n)
    treated = segment != "No E-Mail"
    p_visit = 0.15 + 0.2 * treated * (recency <= 6)
    visit = (rng.random(n) < p_visit).astype(int)
    conversion = visit * (rng.random(n) < 0.2)
    frame = pd.DataFrame({
        "recency": recency,
        "history_segment": pd.cut(history, bins, labels=labels, right=False).astype(str),
        "history": history,
        "mens": rng.integers(0, 2, n),
        "womens": rng.integers(0, 2, n),
        "zip_code": rng.choice(["Urban", "Surburban", "Rural"], n),
        "newbie": rng.integers(0, 2, n),
        "channel": rng.choice(["Phone", "Web", "Multichannel"], n),
        "segment": segment,
        "visit": visit,
        "conversion": conversion,
        "spend": np.round(conversion * rng.uniform(30, 400, n), 2),
    })
    frame.to_csv(path, index=False, lineterminator="\r\n")
    return path


@pytest.fixture
def fake_hillstrom():
    """``write_fake_hillstrom(path, n=600, seed=0)``: a Hillstrom-format CSV with a planted e-mail effect."""
    return write_fake_hillstrom


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (benchmarks/ is a folder of scripts, not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
