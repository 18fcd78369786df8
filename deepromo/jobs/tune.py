"""Optuna 5 tuning studies over the same training job as ``train.py``.

``python train.py model=splc hparams_search=splc`` runs a study: each trial copies the composed
config, applies the trial's values (dotted keys such as ``model.params.tau``) and calls
``deepromo.jobs.train.run`` — the very function behind a plain ``train.py`` run. The study lives in
an RDB storage (SQLite file by default, PostgreSQL across machines, any SQLAlchemy URL) or an Optuna
journal file (``journal:PATH``), so a killed study resumes with ``load_if_exists`` and several
processes started on the same study share its trial budget; heartbeats fail and rerun the trials of
killed workers. The Hydra Optuna sweeper is not used: it pins optuna<3.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.storages._heartbeat import BaseHeartbeat  # the interface Optuna's fail_stale_trials checks for

from deepromo.jobs.config import ConfigError
from deepromo.jobs.train import quiet_lightning, run

log = logging.getLogger("deepromo.jobs.tune")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}


class PruneOnValidation(pl.Callback):
    """Report ``monitor`` to the trial after each validation epoch; stop the fit when Optuna prunes.

    Written here: the optuna-integration callback has broken across Lightning/Optuna versions.
    """

    def __init__(self, trial: optuna.Trial, monitor: str):
        self.trial, self.monitor = trial, monitor

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch}: {self.monitor}={value:.4f}")


def suggest(trial: optuna.Trial, key: str, space: dict) -> Any:
    """One value for ``key`` from a search-space entry {type: float|int|categorical, low, high, log, step, choices}."""
    kind = space.get("type")
    if kind == "float":
        return trial.suggest_float(key, space["low"], space["high"], log=bool(space.get("log", False)),
                                   step=space.get("step"))
    if kind == "int":
        return trial.suggest_int(key, space["low"], space["high"], log=bool(space.get("log", False)),
                                 step=space.get("step") or 1)
    if kind == "categorical":
        choices = list(space["choices"])
        if any(isinstance(c, (list, tuple, dict)) for c in choices):  # Optuna stores only scalars: use JSON text
            return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in choices]))
        return trial.suggest_categorical(key, choices)
    raise ConfigError(f"hparams_search.params.{key}: unknown type '{kind}'; expected float, int or categorical")


def decode_choice(value: Any) -> Any:
    """Undo the JSON text used for list/dict categorical choices (see ``suggest``)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def trial_config(cfg: DictConfig, values: dict[str, Any], output_dir: Path, run_id: str | None) -> DictConfig:
    """The study's config with the trial's values applied (validated against the config's keys)."""
    trial_cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(trial_cfg, False)
    for key, value in values.items():
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(f"hparams_search.params: '{key}' is not a key of the training config")
        OmegaConf.update(trial_cfg, key, value, merge=False)
    trial_cfg.paths.output_dir = str(output_dir)
    trial_cfg.hparams_search = None
    trial_cfg.registry.register = False
    if not cfg.hparams_search.get("baselines", False):
        trial_cfg.model.baselines = {}
    if trial_cfg.logger.kind == "mlflow":
        trial_cfg.logger.run_id = run_id
    return trial_cfg


def with_model_objective(cfg: DictConfig) -> DictConfig:
    """``cfg`` with a null ``hparams_search.metric`` / ``direction`` / ``prune_on`` filled from the model class's
    ``monitor`` (the generic ``hparams_search=model`` study over the model config's ``search_space``)."""
    hs = cfg.hparams_search
    if hs.get("metric") is not None and hs.get("direction") is not None:
        return cfg
    from deepromo.models.registry import get_model_class

    metric, mode = get_model_class(cfg.model.name).monitor
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        if cfg.hparams_search.get("metric") is None:
            cfg.hparams_search.metric = metric
            cfg.hparams_search.prune_on = cfg.hparams_search.get("prune_on") or metric
        if cfg.hparams_search.get("direction") is None:
            cfg.hparams_search.direction = "maximize" if mode == "max" else "minimize"
    return cfg


def make_study(hs: DictConfig) -> optuna.Study:
    if hs.sampler.name not in SAMPLERS or hs.pruner.name not in PRUNERS:
        raise ConfigError(f"hparams_search: sampler must be one of {sorted(SAMPLERS)} and pruner one of "
                          f"{sorted(PRUNERS)}")
    storage = open_storage(hs)
    sampler = TrialSeededSampler(SAMPLERS[hs.sampler.name], hs.sampler.seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=hs.pruner.n_startup_trials,
                                    n_warmup_steps=hs.pruner.n_warmup_steps)
        if hs.pruner.name == "median"
        else optuna.pruners.NopPruner()
    )
    for attempt in range(5):
        try:
            return optuna.create_study(
                study_name=hs.study_name, storage=storage, sampler=sampler, pruner=pruner,
                direction=hs.direction, load_if_exists=True,
            )
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it between check and insert
            time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"could not create or load study '{hs.study_name}' in {shown_url(str(hs.storage))}")


JOURNAL_PREFIX = "journal:"  # hparams_search.storage=journal:PATH is an Optuna journal file, anything else an RDB URL


def shown_url(url: str) -> str:
    """``url`` for messages and logs, its password replaced by ***."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def heartbeat_seconds(hs: DictConfig) -> int:
    """``hparams_search.heartbeat_interval``, checked: whole seconds >= 1 (what Optuna's heartbeat thread takes)."""
    interval = hs.get("heartbeat_interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"hparams_search.heartbeat_interval={interval!r}: expected a positive whole number "
                          "of seconds")
    return interval


def open_storage(hs: DictConfig, attempts: int = 5) -> optuna.storages.BaseStorage:
    """The study's storage, with heartbeats: an RDB (any SQLAlchemy URL) or, for ``journal:PATH``, an Optuna journal
    file. A trial left RUNNING by a killed worker is marked failed once it has been silent for three heartbeat
    intervals, and its parameters run once more. RDB workers that start together race to create the schema (SQLite
    answers "table already exists"); a short randomised retry lets one of them win."""
    import sqlalchemy.exc

    url = hs.get("storage")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"hparams_search.storage={url!r}: expected a SQLAlchemy URL (sqlite:///optuna.db, "
                          "postgresql+psycopg://user:password@host/db) or journal:PATH")
    interval = heartbeat_seconds(hs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat and retry: "experimental"
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    if url.startswith(JOURNAL_PREFIX):
        return HeartbeatJournalStorage(journal_backend(url), heartbeat_interval=interval, grace_period=interval * 3,
                                       stale_trial_callback=retry)
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return HeartbeatRDBStorage(url=url, heartbeat_interval=interval, grace_period=interval * 3,
                                           heartbeat_stale_trial_callback=retry)
        except ImportError as exc:  # SQLAlchemy imports the URL's driver when it builds the engine
            raise ConfigError(missing_driver_message(url, exc)) from exc
        except sqlalchemy.exc.ArgumentError as exc:
            raise ConfigError(f"hparams_search.storage={shown_url(url)}: not a valid SQLAlchemy URL ({exc}); "
                              "expected e.g. sqlite:///optuna.db, postgresql+psycopg://user:password@host/db or "
                              "journal:PATH") from exc
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt == attempts - 1:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise ConfigError(f"hparams_search.storage={shown_url(url)}: could not open the study storage after "
                                  f"{attempts} attempts: {reason}") from exc
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
    raise AssertionError("unreachable")


def missing_driver_message(url: str, exc: ImportError) -> str:
    """What to install for a storage URL whose database driver is missing."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    shown, backend = shown_url(url), parsed.get_backend_name()
    driver = getattr(exc.__cause__, "name", None) or exc.name or parsed.get_driver_name()  # Optuna re-raises
    if backend == "postgresql":
        other = " (or pip install psycopg2-binary for postgresql+psycopg2://)" if driver == "psycopg2" else ""
        return (f"hparams_search.storage={shown}: the PostgreSQL driver '{driver}' is not installed. Install "
                "deepromo's postgres extra (pip install 'deepromo[postgres]', the psycopg 3 driver) and write the URL "
                f"as postgresql+psycopg://user:password@host/db{other}")
    return (f"hparams_search.storage={shown}: SQLAlchemy needs the '{driver}' driver for {backend}, which is not "
            "installed; pip install it, or use sqlite:///optuna.db or journal:optuna.journal")


class HeartbeatRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose stale-trial check also catches a trial killed before its first heartbeat.

    Optuna records a trial's first heartbeat from a thread started just after the trial is created, and its stale
    check skips trials with no heartbeat row: a worker killed in that gap leaves the trial RUNNING forever. Here a
    RUNNING trial without a heartbeat whose start is older than the grace period is stale too (its worker's clock
    wrote the start time, so workers' clocks must agree to within the grace period, as NTP keeps them)."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        import sqlalchemy
        from optuna.storages._rdb import models  # Optuna's schema; no public query for trials without a heartbeat

        stale = super()._get_stale_trial_ids(study_id)
        query = (
            sqlalchemy.select(models.TrialModel.trial_id)
            .outerjoin(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
            .where(models.TrialModel.study_id == study_id, models.TrialModel.state == optuna.trial.TrialState.RUNNING,
                   models.TrialHeartbeatModel.trial_id.is_(None))
        )
        with self.engine.connect() as connection:
            never_beaten = [row[0] for row in connection.execute(query)]
        # FrozenTrial.datetime_start is naive local time in every Optuna version (the column's meaning changed in 5)
        started_before = datetime.now() - timedelta(seconds=self.grace_period or 2 * self.heartbeat_interval)
        return stale + [trial_id for trial_id in never_beaten if trial_id not in stale
                        and (self.get_trial(trial_id).datetime_start or datetime.now()) < started_before]


def journal_backend(url: str) -> optuna.storages.journal.JournalFileBackend:
    """The journal file of ``journal:PATH`` (``journal:optuna.journal`` relative to the working directory,
    ``journal:///abs/path.journal`` absolute); its folder is created."""
    rest = url[len(JOURNAL_PREFIX):]
    if rest.startswith("//"):
        if not rest.startswith("///"):
            raise ConfigError(f"hparams_search.storage={url}: a journal is a file on this machine or a shared file "
                              "system, not a host; expected journal:relative/path or journal:///absolute/path")
        rest = rest[2:]
    if not rest or rest.endswith("/"):
        raise ConfigError(f"hparams_search.storage={url}: expected journal:PATH naming a file, "
                          "e.g. journal:optuna.journal")
    path = Path(rest).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the default lock (a symlink next to the file) works on local disks and NFS; a lock left by a killed worker
        # is broken after 30 s
        return optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as exc:
        raise ConfigError(f"hparams_search.storage={url}: cannot write the journal file {path}: {exc}") from exc


HEARTBEAT_ATTR = "deepromo:heartbeat"  # trial system attr: Unix time of the worker's last heartbeat (journal storage)


class HeartbeatJournalStorage(optuna.storages.journal.JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat protocol Optuna gives only RDB storages (written here: Optuna 5's
    JournalStorage has none, so a killed worker's trial would stay RUNNING forever). A heartbeat is a trial system
    attribute with the worker's Unix time, one journal line per interval; a RUNNING trial whose last heartbeat (or
    start, before its first) is older than the grace period is failed by the next worker that starts a trial, and
    the callback runs its parameters again — Optuna's own ``fail_stale_trials`` does both. Clocks of the workers
    sharing a journal must agree to within the grace period."""

    def __init__(self, backend, heartbeat_interval: int, grace_period: int, stale_trial_callback=None):
        super().__init__(backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker already failed it as stale
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # a retried trial inherits its predecessor's system attrs, heartbeat included: its start counts too
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - max(started, float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0))) > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_trial_callback


DUPLICATE_ATTR = "deepromo_duplicate_of"  # user attr of a trial skipped because its parameters were tried before
MAX_DUPLICATES_IN_A_ROW = 20  # a worker that draws only repeats this often takes the search space as exhausted


def finished_trials(study: optuna.Study) -> int:
    """Trials that count against the budget: finished ones, not the skipped repeats."""
    return sum(DUPLICATE_ATTR not in t.user_attrs for t in study.get_trials(deepcopy=False, states=FINISHED))


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Each trial gets a fresh ``make(seed)`` sampler seeded from (study seed, trial number). Trial numbers are
    unique across workers and resumes, so two workers, or a study resumed, never replay the same random draws
    (a single seeded sampler per process restarts its stream in every process). Written here: Optuna seeds a
    sampler per process, not per trial."""

    def __init__(self, make, seed: int | None):
        self.make, self.seed, self.by_trial = make, seed, {}

    def _for(self, trial) -> optuna.samplers.BaseSampler:
        if trial.number not in self.by_trial:
            seed = None if self.seed is None else int(np.random.SeedSequence([int(self.seed), trial.number])
                                                       .generate_state(1)[0])
            self.by_trial[trial.number] = self.make(seed=seed)
        return self.by_trial[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self.by_trial.pop(trial.number, None)


class DuplicateParameters(Exception):
    """A trial drew parameters that an earlier or running trial already has (it is skipped, not trained)."""


def earlier_trial_with(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """Number of another live or finished trial with exactly ``trial``'s parameters (failed trials do not count:
    running their parameters again is a retry)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING,
              optuna.trial.TrialState.WAITING)
    for other in study.get_trials(deepcopy=False, states=states):
        if other.number != trial.number and other.params == trial.params and DUPLICATE_ATTR not in other.user_attrs:
            return other.number
    return None


class Tracker:
    """The study's MLflow parent run and one child run per trial (no-op when the logger is not MLflow)."""

    def __init__(self, cfg: DictConfig):
        self.client = self.parent = None
        if cfg.logger.kind != "mlflow":
            return
        from deepromo.serving.tracking import tracking_client

        self.client = tracking_client(cfg.logger.tracking_uri)
        exp = self.client.get_experiment_by_name(cfg.logger.experiment_name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(cfg.logger.experiment_name)
        hs = cfg.hparams_search
        self.parent = self.client.create_run(
            self.experiment_id, run_name=f"study-{hs.study_name}",
            tags={"deepromo.study": hs.study_name, "deepromo.model": cfg.model.name},
        ).info.run_id
        self.client.log_param(self.parent, "study_name", hs.study_name)
        self.client.log_param(self.parent, "metric", f"{hs.metric} ({hs.direction})")
        self.client.log_param(self.parent, "n_trials", hs.n_trials)
        self.client.log_param(self.parent, "search_space", json.dumps(OmegaConf.to_container(hs.params))[:500])

    def child(self, number: int) -> str | None:
        if self.client is None:
            return None
        return self.client.create_run(
            self.experiment_id, run_name=f"trial-{number}",
            tags={"mlflow.parentRunId": self.parent, "deepromo.trial": str(number)},
        ).info.run_id

    def end_child(self, run_id: str | None, status: str) -> None:
        if self.client is not None and run_id is not None:
            self.client.set_terminated(run_id, status=status)

    def finish(self, study: optuna.Study, files: list[Path]) -> None:
        if self.client is None:
            return
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if complete:
            self.client.log_metric(self.parent, "best_value", study.best_value)
        self.client.log_metric(self.parent, "finished_trials", finished_trials(study))
        for path in files:
            self.client.log_artifact(self.parent, str(path))
        self.client.set_terminated(self.parent, "FINISHED")


def run_study(cfg: DictConfig) -> optuna.Study:
    """Run (or resume) the study in ``cfg.hparams_search`` until it has ``n_trials`` finished trials."""
    quiet_lightning()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = with_model_objective(cfg)
    hs = cfg.hparams_search
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = make_study(hs)
    budget = int(hs.n_trials)
    left = budget - finished_trials(study)
    tracker = Tracker(cfg)
    monitor = hs.get("prune_on") or None
    if left <= 0:
        print(f"study '{hs.study_name}' already has {finished_trials(study)} of {budget} trials; nothing to run")

    repeats_in_a_row = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal repeats_in_a_row
        space_of = OmegaConf.to_container(hs.params, resolve=True)
        values = {key: suggest(trial, key, space) for key, space in space_of.items()}
        earlier = earlier_trial_with(study, trial)
        if earlier is not None:
            trial.set_user_attr(DUPLICATE_ATTR, earlier)
            repeats_in_a_row += 1
            if repeats_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                print(f"study '{hs.study_name}': the last {repeats_in_a_row} draws all repeated earlier trials; "
                      "the search space looks exhausted, stopping", flush=True)
                study.stop()
            raise DuplicateParameters(f"trial {trial.number} drew the parameters of trial {earlier}; skipped")
        repeats_in_a_row = 0
        run_id = tracker.child(trial.number)
        status = "FAILED"
        try:
            trial_cfg = trial_config(cfg, values, out_dir / f"trial_{trial.number:03d}", run_id)
            callbacks = (PruneOnValidation(trial, monitor),) if monitor else ()
            results = run(trial_cfg, callbacks=callbacks)
            if hs.metric not in results["val"]:
                raise ConfigError(f"hparams_search.metric '{hs.metric}' not found; validation metrics are "
                                  f"{sorted(results['val'])}")
            value = float(results["val"][hs.metric])
            status = "FINISHED" if math.isfinite(value) else "FAILED"
            return value  # NaN is recorded by Optuna as a failed trial
        except optuna.TrialPruned:
            status = "KILLED"
            raise
        finally:
            tracker.end_child(run_id, status)

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = finished_trials(study)
        if done >= budget:
            study.stop()  # the budget is shared by every worker of the study
        if DUPLICATE_ATTR in trial.user_attrs:
            return
        value = "—" if trial.value is None else f"{trial.value:.4f}"
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no completed trial yet"
        print(f"[{hs.study_name}] trial {trial.number} {trial.state.name.lower()}: {hs.metric}={value} | "
              f"{done}/{budget} finished | {best}", flush=True)

    if left > 0:
        study.optimize(
            objective,
            n_trials=None,  # until the study's budget of finished trials is reached (progress stops it)
            timeout=hs.timeout,
            catch=(Exception,),  # a failing trial is recorded as FAIL and the study goes on
            callbacks=[progress],
            gc_after_trial=True,
        )
    files = write_study_outputs(study, cfg, out_dir)
    tracker.finish(study, files)
    return study


def write_study_outputs(study: optuna.Study, cfg: DictConfig, out_dir: Path) -> list[Path]:
    """best_params.yaml (a config to merge), best_overrides.txt (command-line overrides), plots, trials.csv."""
    hs = cfg.hparams_search
    files: list[Path] = []
    trials = study.trials_dataframe()
    trials.to_csv(out_dir / "trials.csv", index=False)
    files.append(out_dir / "trials.csv")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        print(f"study '{hs.study_name}': no completed trial, no best parameters")
        return files
    best = study.best_trial
    params = {k: decode_choice(v) for k, v in best.params.items()}
    nested = OmegaConf.create()
    for key, value in params.items():
        OmegaConf.update(nested, key, value, merge=True)
    header = (f"# best trial {best.number} of study '{hs.study_name}': {hs.metric}={best.value:.6f} ({hs.direction})\n"
              f"# use: python train.py model={cfg.model.name} $(cat best_overrides.txt)\n")
    (out_dir / "best_params.yaml").write_text(header + OmegaConf.to_yaml(nested))
    overrides = " ".join(f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, list) else v}"
                         for k, v in params.items())
    (out_dir / "best_overrides.txt").write_text(overrides + "\n")
    files += [out_dir / "best_params.yaml", out_dir / "best_overrides.txt"]
    files += plot_study(study, out_dir)
    print(f"study '{hs.study_name}': best {hs.metric}={best.value:.4f} (trial {best.number}) with "
          f"{overrides}\n  written to {out_dir}")
    return files


def plot_study(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Optimisation history and parameter importances (importances need >= 2 completed trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written = []
    plots = [("optimization_history.png", ovm.plot_optimization_history)]
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) >= 2:
        plots.append(("param_importances.png", ovm.plot_param_importances))  # meaningless with one trial
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(out_dir / name, dpi=110)
            plt.close(fig)
            written.append(out_dir / name)
        except (ValueError, RuntimeError) as exc:  # e.g. too few completed trials for importances
            log.warning("could not draw %s: %s", name, exc)
    return written
