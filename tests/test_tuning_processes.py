"""Studies across processes (slow: each process imports torch and trains): kill and resume, two workers, on each
storage — a SQLite file, an Optuna journal file, and a real PostgreSQL server started by deepromo.jobs.postgres."""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from omegaconf import OmegaConf

from conftest import ROOT, TINY_CUSTOMERS

pytestmark = pytest.mark.slow
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
COMPLETE, RUNNING = (optuna.trial.TrialState.COMPLETE,), (optuna.trial.TrialState.RUNNING,)
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
SPLC_PARAMS = len(OmegaConf.load(ROOT / "configs" / "hparams_search" / "splc.yaml").params)  # all drawn: it trains


@pytest.fixture(scope="module")
def postgres_url():
    """The URL of one throwaway PostgreSQL server for this module's studies (each test uses its own study name)."""
    from deepromo.jobs.postgres import PostgresError, throwaway_postgres

    if importlib.util.find_spec("psycopg") is None:
        pytest.fail("needs the psycopg driver: pip install 'deepromo[postgres]'", pytrace=False)
    server, missing = throwaway_postgres(), None
    try:
        url = server.__enter__()
    except PostgresError as exc:
        missing = str(exc).splitlines()[0]
    if missing:
        pytest.fail(f"needs a PostgreSQL 15 server: {missing}", pytrace=False)
    yield url
    server.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "journal", "postgres"])
def storage_url(request, tmp_path):
    """hparams_search.storage for each kind of storage."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path}/optuna.db" if request.param == "sqlite" else f"journal:{tmp_path}/optuna.journal"


def plain_storage(url):
    """Optuna's own storage for ``url``, to read the study as any Optuna user would (no heartbeats)."""
    if url.startswith("journal:"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url[len("journal:"):]))
    return optuna.storages.RDBStorage(url)


def command(url, n_trials, name, tmp_path):
    return [
        sys.executable, "train.py", "hparams_search=splc", f"hparams_search.storage={url}",
        f"hparams_search.study_name={name}", f"hparams_search.n_trials={n_trials}", "hparams_search.prune_on=null",
        "hparams_search.heartbeat_interval=1", "logger=none", f"data.options.n_customers={TINY_CUSTOMERS}",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}/{name}-{time.time_ns()}",
    ]


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


def test_killed_worker_loses_no_trial_and_the_study_resumes(storage_url, tmp_path):
    name = f"killed-{tmp_path.name}"
    storage = plain_storage(storage_url)  # made before the worker starts: no race to create the SQLite schema
    proc = subprocess.Popen(command(storage_url, 4, name, tmp_path), cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, training = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None:  # kill it mid-training, after a trial has completed
        time.sleep(0.2)
        try:
            study = load(storage, name)
        except KeyError:  # study not created yet
            continue
        trials = study.get_trials()  # one read: a trial can finish between two
        training = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and len(t.params) == SPLC_PARAMS]
        if training and any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            break
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert training, f"no trial was training after a completed one before the kill: {err[-1500:]}"
    before = {t.number: (t.params, t.value) for t in load(storage, name).get_trials(states=COMPLETE)}
    killed = [t.number for t in load(storage, name).get_trials(states=RUNNING)]
    assert killed == [training[0].number], killed  # the trial the kill interrupted was left RUNNING
    time.sleep(4)  # past the heartbeat grace period (3 intervals of 1 s): the killed trial is then stale
    done = subprocess.run(command(storage_url, 4, name, tmp_path), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = load(storage, name)
    assert len(study.get_trials(states=DONE)) == 4
    assert not study.get_trials(states=RUNNING)
    after = {t.number: (t.params, t.value) for t in study.trials}
    assert all(after[n] == kept for n, kept in before.items())  # finished trials kept as they were
    assert study.trials[killed[0]].state == optuna.trial.TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retried) == 1 and retried[0].params == study.trials[killed[0]].params  # its parameters ran again
    complete = [tuple(sorted(t.params.items())) for t in study.get_trials(states=COMPLETE)]
    assert len(set(complete)) == len(complete), complete  # the resumed worker drew no earlier configuration
    assert "4/4 finished" in done.stdout


def test_two_workers_share_one_study(storage_url, tmp_path):
    name = f"shared-{tmp_path.name}"
    storage = plain_storage(storage_url)
    workers = [subprocess.Popen(command(storage_url, 4, name, tmp_path), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-1500:] for o in outputs]
    from deepromo.jobs.tune import DUPLICATE_ATTR

    finished = [t for t in load(storage, name).get_trials(states=DONE) if DUPLICATE_ATTR not in t.user_attrs]
    # the budget is shared: 4 in all, plus at most one trial that was already running when it filled
    assert 4 <= len(finished) <= 5
    assert all(f"[{name}] trial" in out for out, _ in outputs)  # both workers ran trials
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == len(params), params  # the two workers never drew the same configuration
    assert not load(storage, name).get_trials(states=RUNNING)


def test_postgres_script_starts_detached_refuses_a_used_folder_and_stops(postgres_url):
    """python -m deepromo.jobs.postgres start --detach / stop, as the docs use it (postgres_url: only for its
    one-line failure when PostgreSQL or psycopg is missing)."""
    import tempfile
    from pathlib import Path

    import sqlalchemy

    root = Path(tempfile.gettempdir()) / f"deepromo-pg-test-{os.getpid()}-{time.time_ns()}"
    script = [sys.executable, "-m", "deepromo.jobs.postgres"]
    started = subprocess.run([*script, "start", "--root", str(root), "--detach"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select current_database(), current_user")).one() == (
                "optuna", "deepromo")
        engine.dispose()
        again = subprocess.run([*script, "start", "--root", str(root), "--detach"], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 2 and "is not an empty folder" in again.stderr
        assert (root / "data" / "postmaster.pid").exists()  # the refused start left the running server alone
    finally:
        stopped = subprocess.run([*script, "stop", "--root", str(root)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not root.exists()
    with pytest.raises(sqlalchemy.exc.OperationalError):
        sqlalchemy.create_engine(url).connect()
