"""Studies across processes (slow: each process imports torch and trains): kill and resume, two workers."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import ROOT, TINY_CUSTOMERS

pytestmark = pytest.mark.slow
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


def command(tmp_path, n_trials, name):
    return [
        sys.executable, "train.py", "hparams_search=splc", f"hparams_search.storage=sqlite:///{tmp_path}/optuna.db",
        f"hparams_search.study_name={name}", f"hparams_search.n_trials={n_trials}", "hparams_search.prune_on=null",
        "hparams_search.heartbeat_interval=1", "logger=none", f"data.options.n_customers={TINY_CUSTOMERS}",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}/{name}-{time.time_ns()}",
    ]


def load(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/optuna.db")


def test_killed_study_resumes_and_completes_budget(tmp_path):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(command(tmp_path, 4, "killed"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    completed = []
    while time.time() < deadline:
        time.sleep(1)
        try:
            completed = load(tmp_path, "killed").get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        except KeyError:  # study not created yet
            continue
        if completed:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert completed, "no trial finished before the kill"
    before = {t.number: t.params for t in load(tmp_path, "killed").get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    time.sleep(4)  # past the heartbeat grace period: the killed running trial is then marked failed
    done = subprocess.run(command(tmp_path, 4, "killed"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = load(tmp_path, "killed")
    assert len(study.get_trials(states=DONE)) == 4
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    after = {t.number: t.params for t in study.trials}
    assert all(after[n] == p for n, p in before.items())  # finished trials kept as they were
    complete = [tuple(sorted(t.params.items())) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert len(set(complete)) == len(complete), complete  # the resumed worker drew no earlier configuration
    assert "4/4 finished" in done.stdout


def test_two_workers_share_one_sqlite_study(tmp_path):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    workers = [subprocess.Popen(command(tmp_path, 4, "shared"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-1500:] for o in outputs]
    from deepromo.jobs.tune import DUPLICATE_ATTR

    finished = [t for t in load(tmp_path, "shared").get_trials(states=DONE) if DUPLICATE_ATTR not in t.user_attrs]
    # the budget is shared: 4 in all, plus at most one trial that was already running when it filled
    assert 4 <= len(finished) <= 5
    assert all("trial" in out for out, _ in outputs)  # both workers ran trials
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == len(params), params  # the two workers never drew the same configuration
