"""Optuna studies over the train.py job: budget, resume, failures, pruning, outputs, storages (RDB, journal file)."""

import math

import optuna
import pytest
import pytorch_lightning as pl

from deepromo.data.datamodule import PromoDataModule
from deepromo.data.views import build_view
from deepromo.models.splc import TwoStageSPLC
from deepromo.jobs.tune import PruneOnValidation, make_study, run_study

from conftest import ROOT

SMALL_SPACE = [
    "~hparams_search.params",
    "+hparams_search.params={model.params.tau: {type: float, low: 0.2, high: 0.6},"
    " model.params.hidden: {type: categorical, choices: [8, 16]}}",
]


def study_overrides(tmp_path, n_trials, *extra):
    return [
        "hparams_search=splc",
        f"hparams_search.storage=sqlite:///{tmp_path}/optuna.db",
        f"hparams_search.n_trials={n_trials}",
        "hparams_search.study_name=test-study",
        "hparams_search.prune_on=null",
        "trainer.max_epochs=1",
        "model.params.warmup_epochs=0",
        *SMALL_SPACE,
        *extra,
    ]


def test_three_trial_study_writes_best_params(make_config, tmp_path):
    cfg = make_config(*study_overrides(tmp_path, 3))
    study = run_study(cfg)
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    out = tmp_path / "run"
    best = (out / "best_overrides.txt").read_text().split()
    assert {b.split("=")[0] for b in best} == {"model.params.tau", "model.params.hidden"}
    assert "tau:" in (out / "best_params.yaml").read_text()
    assert (out / "optimization_history.png").stat().st_size > 5_000
    assert (out / "trials.csv").exists()
    # each trial ran the real job in its own folder
    assert len(list(out.glob("trial_*/metrics.json"))) == 3


def test_resume_keeps_finished_trials_and_completes_budget(make_config, tmp_path):
    first = run_study(make_config(*study_overrides(tmp_path, 2)))
    params_before = [t.params for t in first.trials]
    again = run_study(make_config(*study_overrides(tmp_path, 4)))
    assert len(again.trials) == 4
    assert [t.params for t in again.trials[:2]] == params_before
    # a finished study runs nothing more
    assert len(run_study(make_config(*study_overrides(tmp_path, 4))).trials) == 4


@pytest.mark.filterwarnings("ignore:Fixed parameter model.params.tau:UserWarning")  # the deliberate bad value
def test_failing_trial_is_recorded_and_study_goes_on(make_config, tmp_path):
    cfg = make_config(*study_overrides(tmp_path, 3))
    study = make_study(cfg.hparams_search)
    study.enqueue_trial({"model.params.tau": 1.5, "model.params.hidden": 8}, skip_if_exists=False)  # invalid tau
    study = run_study(cfg)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert math.isfinite(study.best_value)


def test_pruning_callback_stops_training(tiny_world):
    dm = PromoDataModule(build_view("customer", tiny_world), batch_size=128)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    model = TwoStageSPLC.from_datamodule(dm, hidden=8, stage2_hidden=8, class_weights=None)
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, callbacks=[PruneOnValidation(trial, "val/stage2_auc")])
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 0"):
        trainer.fit(model, datamodule=dm)


def test_mlflow_parent_and_child_runs(make_config, tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = make_config(*study_overrides(tmp_path, 2, "logger=mlflow", f"logger.artifact_location={tmp_path}/art"))
    run_study(cfg)
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("deepromo").experiment_id])
    parents = [r for r in runs if r.info.run_name == "study-test-study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert "val/balanced_accuracy" in children[0].data.metrics
    assert "best_value" in parents[0].data.metrics
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"best_params.yaml", "best_overrides.txt", "optimization_history.png"} <= names


def test_every_registered_model_has_a_search_space(make_config, tmp_path):
    """Issue contract: tuning works for every registered model (one short trial each)."""
    import deepromo

    for name in deepromo.list_models():
        search = name if (ROOT / "configs" / "hparams_search" / f"{name}.yaml").exists() else "model"
        cfg = make_config(f"model={name}", f"hparams_search={search}", "hparams_search.n_trials=1",
                          f"hparams_search.storage=sqlite:///{tmp_path}/{name}.db", "trainer.max_epochs=1",
                          "hparams_search.prune_on=null", f"paths.output_dir={tmp_path}/{name}")
        study = run_study(cfg)
        assert study.trials[0].state == optuna.trial.TrialState.COMPLETE, name
        overrides = (tmp_path / name / "best_overrides.txt").read_text().split()
        assert all("=" in o and " " not in o for o in overrides)  # ready for $(cat best_overrides.txt)
        if name == "dipn":  # list-valued choices come back as lists, not JSON text
            assert any(o.startswith("model.params.hidden=[") for o in overrides)
            assert "hidden:\n" in (tmp_path / name / "best_params.yaml").read_text()


def test_resumed_and_repeated_studies_never_repeat_parameters(make_config, tmp_path):
    """A resumed study and a second worker continue the sampler's stream instead of restarting it."""
    from deepromo.jobs.tune import DUPLICATE_ATTR

    run_study(make_config(*study_overrides(tmp_path, 2)))
    study = run_study(make_config(*study_overrides(tmp_path, 5)))  # the same seed, resumed
    ran = [t for t in study.trials if DUPLICATE_ATTR not in t.user_attrs]
    params = [tuple(sorted(t.params.items())) for t in ran]
    assert len(ran) == 5 and len(set(params)) == 5, params


def test_a_drawn_repeat_is_skipped_and_not_counted(make_config, tmp_path):
    from deepromo.jobs.tune import DUPLICATE_ATTR

    cfg = make_config(*study_overrides(tmp_path, 3))
    study = make_study(cfg.hparams_search)
    for _ in range(2):  # the same parameters queued twice: the second is a repeat
        study.enqueue_trial({"model.params.tau": 0.3, "model.params.hidden": 8}, skip_if_exists=False)
    study = run_study(cfg)
    repeats = [t for t in study.trials if DUPLICATE_ATTR in t.user_attrs]
    assert len(repeats) == 1 and repeats[0].user_attrs[DUPLICATE_ATTR] == 0
    counted = [t for t in study.trials if DUPLICATE_ATTR not in t.user_attrs]
    assert len(counted) == 3 and len({tuple(sorted(t.params.items())) for t in counted}) == 3


def test_journal_file_study_resumes_with_heartbeats(make_config, tmp_path):
    """hparams_search.storage=journal:PATH keeps the study in an Optuna journal file (no database): a second
    run_study adds only the missing trials, and every trial recorded heartbeats there."""
    from deepromo.jobs.tune import HEARTBEAT_ATTR

    journal = tmp_path / "studies" / "test.journal"  # its folder is created
    storage = f"hparams_search.storage=journal:{journal}"
    first = run_study(make_config(*study_overrides(tmp_path, 2), storage))
    params_before = [t.params for t in first.trials]
    assert journal.stat().st_size > 0
    again = run_study(make_config(*study_overrides(tmp_path, 3), storage))
    assert len(again.trials) == 3 and [t.params for t in again.trials[:2]] == params_before
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in again.trials)
    assert all(isinstance(t.system_attrs.get(HEARTBEAT_ATTR), float) for t in again.trials)
    reread = optuna.load_study(study_name="test-study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))  # plain Optuna reads the same file
    assert [t.params for t in reread.trials] == [t.params for t in again.trials]


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_trial_of_a_worker_killed_before_its_first_heartbeat_is_failed_and_rerun(make_config, tmp_path, storage):
    """A RUNNING trial that never recorded a heartbeat (its worker died between creating it and the heartbeat
    thread's first beat) and started longer ago than the grace period is failed, and its parameters run again."""
    from datetime import datetime, timedelta

    url = f"sqlite:///{tmp_path}/optuna.db" if storage == "sqlite" else f"journal:{tmp_path}/optuna.journal"
    cfg = make_config(*study_overrides(tmp_path, 2, f"hparams_search.storage={url}",
                                       "hparams_search.heartbeat_interval=1"))
    study = make_study(cfg.hparams_search)
    orphan = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params={"model.params.tau": 0.45, "model.params.hidden": 16},
        distributions={"model.params.tau": optuna.distributions.FloatDistribution(0.2, 0.6),
                       "model.params.hidden": optuna.distributions.CategoricalDistribution([8, 16])})
    orphan.datetime_start = datetime.now() - timedelta(minutes=10)
    study.add_trial(orphan)
    study = run_study(cfg)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE], states
    assert study.trials[1].params == orphan.params and study.trials[1].system_attrs["failed_trial"] == 0


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # study.ask
def test_a_live_trial_without_a_heartbeat_yet_is_not_failed(make_config, tmp_path):
    """The check above leaves a trial that started within the grace period alone (its worker may be alive)."""
    cfg = make_config(*study_overrides(tmp_path, 1, "hparams_search.heartbeat_interval=30"))
    study = make_study(cfg.hparams_search)
    live = study.ask()  # RUNNING, no heartbeat, just started
    study = run_study(cfg)
    assert study.trials[live.number].state == optuna.trial.TrialState.RUNNING
    assert [t.state for t in study.trials[1:]] == [optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("url", ["postgresql+psycopg://optuna:secret@127.0.0.1:1/optuna",
                                 "postgresql://optuna:secret@127.0.0.1:1/optuna"])
def test_postgres_url_without_the_driver_names_the_extra(make_config, tmp_path, monkeypatch, url):
    import sys

    from deepromo.data.errors import UserInputError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed: import psycopg fails
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    cfg = make_config(*study_overrides(tmp_path, 1, f"hparams_search.storage={url}"))
    with pytest.raises(UserInputError, match=r"hparams_search.storage=postgresql.*optuna:\*\*\*@.*not installed.*"
                                             r"pip install 'deepromo\[postgres\]'") as raised:
        make_study(cfg.hparams_search)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("storage, expected", [
    ("journal://fileserver/study.journal", "not a host"),
    ("journal:", "naming a file"),
    ("not-a-url", "not a valid SQLAlchemy URL"),
])
def test_bad_storage_is_named(make_config, tmp_path, storage, expected):
    from deepromo.data.errors import UserInputError

    cfg = make_config(*study_overrides(tmp_path, 1, f"hparams_search.storage={storage}"))
    with pytest.raises(UserInputError, match=f"hparams_search.storage={storage}.*{expected}"):
        make_study(cfg.hparams_search)


def test_unreachable_database_is_one_clear_error(make_config, tmp_path):
    """A database that cannot be opened (here a SQLite file in a folder that does not exist, so that the test needs no
    optional driver; the PostgreSQL case is the same code path) stops with one line naming the storage."""
    from deepromo.data.errors import UserInputError
    from deepromo.jobs.tune import open_storage

    url = f"sqlite:///{tmp_path}/no/such/folder/optuna.db"
    cfg = make_config(*study_overrides(tmp_path, 1, f"hparams_search.storage={url}"))
    with pytest.raises(UserInputError, match=r"no/such/folder/optuna.db: could not open the study storage after 1 "
                                             r"attempts: .*unable to open database file"):
        open_storage(cfg.hparams_search, attempts=1)


def test_heartbeat_interval_must_be_positive(make_config, tmp_path):
    from deepromo.data.errors import UserInputError

    cfg = make_config(*study_overrides(tmp_path, 1, "hparams_search.heartbeat_interval=0"))
    with pytest.raises(UserInputError, match="hparams_search.heartbeat_interval=0: expected a positive"):
        make_study(cfg.hparams_search)
