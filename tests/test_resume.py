"""A killed training run resumes from its last checkpoint to the same metrics as an uninterrupted run, and a run
that dies never leaves its MLflow run RUNNING or FINISHED."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT

SETTINGS = ["model=splc", "debug=tiny", "trainer.max_epochs=8", "data.batch_size=8", "~model.baselines.rfm_segments",
            "~model.baselines.random_forest"]


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *SETTINGS, *overrides]


def env() -> dict:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONHASHSEED": "0"}


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(train_command(f"paths.output_dir={whole}"), check=True, env=env(), cwd=tmp_path,
                   capture_output=True)
    proc = subprocess.Popen(train_command(f"paths.output_dir={killed}"), env=env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # well into the next epoch
    assert proc.poll() is None, "the run ended before it could be killed; give it more epochs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    done = subprocess.run(train_command(f"resume={killed}"), env=env(), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = json.loads((whole / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["resumed_from"].endswith("last.ckpt")
    assert resumed["trained_steps"] == expected["trained_steps"]
    for method, row in expected["test"].items():
        for metric, value in row.items():
            np.testing.assert_allclose(resumed["test"][method][metric], value, rtol=1e-6, atol=1e-9,
                                       err_msg=f"{method} {metric}")


def test_resume_refuses_what_it_cannot_continue(make_config, tmp_path):
    from deepromo.jobs.config import ConfigError
    from deepromo.jobs.train import run

    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ConfigError, match="no checkpoints/last.ckpt"):
        run(make_config(f"resume={tmp_path / 'empty_run'}"))
    with pytest.raises(ConfigError, match="no such run folder or checkpoint"):
        run(make_config(f"resume={tmp_path / 'missing'}"))
    first = run(make_config("trainer.max_epochs=1", "~model.baselines"))
    with pytest.raises(ConfigError, match="lean model file without training state"):
        run(make_config(f"resume={first['model_path']}"))
    with pytest.raises(ConfigError, match="is of model 'splc', not model=dipn"):
        run(make_config("model=dipn", f"resume={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"))


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=0", r"trainer.max_epochs=0: expected a positive integer"),
    ("trainer.max_epochs=-1", r"trains forever unless callbacks.early_stopping.enabled=true"),
    ("trainer.devices=0", r"trainer.devices=0"),
    ("data.batch_size=0", r"data.batch_size=0"),
    ("trainer.accelerator=tpu9", r"trainer.accelerator='tpu9'"),
    ("seed=-3", r"seed=-3"),
    ("model.params.lr=fast", r"model.params.lr='fast'"),
])
def test_settings_that_cannot_train_are_refused_before_any_work(make_config, tmp_path, override, message):
    from deepromo.jobs.config import ConfigError
    from deepromo.jobs.train import run

    with pytest.raises(ConfigError, match=message):
        run(make_config(override))
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_marks_its_mlflow_run_failed(make_config, tmp_path, monkeypatch, mlflow_store):
    import mlflow

    from deepromo.jobs import train

    uri = mlflow_store

    def broken_baseline(*args, **kwargs):
        raise RuntimeError("the baseline broke after the model trained")

    monkeypatch.setattr(train, "run_baseline", broken_baseline)
    with pytest.raises(RuntimeError, match="baseline broke"):
        train.run(make_config("logger=mlflow", f"logger.artifact_location={tmp_path}/art", "trainer.max_epochs=1"))
    client = mlflow.tracking.MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("deepromo").experiment_id])
    assert found.info.status == "FAILED"
    assert not client.search_model_versions("name='deepromo-splc-synthetic'")


@pytest.mark.slow
def test_two_processes_opening_a_fresh_tracking_store_both_succeed(tmp_path):
    code = ("from deepromo.serving.tracking import use_tracking; import mlflow; "
            f"use_tracking('sqlite:///{tmp_path}/mlflow.db'); mlflow.tracking.MlflowClient().search_experiments()")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [err[-800:] for _, err in results]
