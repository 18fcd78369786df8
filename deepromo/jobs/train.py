"""The training job behind ``train.py``: data -> view -> fit -> evaluate vs baselines -> outputs.

``run(cfg)`` takes the composed Hydra config (see ``configs/train.yaml``) and returns the metrics
dict it also writes to ``<run_dir>/metrics.json``. Tuning and tests call the same function.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from deepromo.data.sources import load_source
from deepromo.jobs.config import ConfigError, check_model_params, check_train_config
from deepromo.models.base import CHECKPOINT_KEY, PromoModel, to_primitive
from deepromo.models.registry import get_model_class
from deepromo.reporting.render import format_table
from deepromo.serving.drift import training_reference
from deepromo.tasks import get_task, model_datamodule

log = logging.getLogger("deepromo")
TRACKING_RECORD = "tracking.json"  # in a run folder: the MLflow run it logs into (a resumed run continues it)


def quiet_lightning() -> None:
    """Keep the console to what matters: Lightning's device banners and tips, and two warnings
    that do not apply here (pytree deprecation inside Lightning; few-batch logging interval)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def trainer_strategy(cfg: DictConfig, cls=None):
    """``trainer.strategy``, as a DDPStrategy that tolerates parameters without a gradient for the models that
    declare them (``ddp_unused_parameters``)."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if strategy == "ddp" and getattr(cls, "ddp_unused_parameters", False):
        return pl.strategies.DDPStrategy(find_unused_parameters=True)
    return strategy


def build_trainer(cfg: DictConfig, run_dir: Path, logger=False, callbacks=(), checkpointing: bool = False,
                  cls=None) -> pl.Trainer:
    """The Lightning Trainer of ``cfg.trainer`` for model class ``cls``."""
    t = cfg.trainer
    cap = cfg.model.get("max_epochs")  # an expensive model may cap the epochs (e.g. txl on CPU)
    max_epochs = min(int(t.max_epochs), int(cap)) if cap and int(t.max_epochs) != -1 else int(t.max_epochs)
    if max_epochs != int(t.max_epochs):
        log.warning("model.max_epochs=%s caps trainer.max_epochs=%s for model '%s' (set model.max_epochs=null to "
                    "train longer)", cap, t.max_epochs, cfg.model.name)
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator=str(t.accelerator),
        devices=t.devices,
        strategy=trainer_strategy(cfg, cls),
        num_nodes=int(t.get("num_nodes", 1)),
        use_distributed_sampler=False,  # deepromo's batch samplers shard themselves (deepromo.data.datamodule)
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val,
        deterministic=bool(t.deterministic),
        enable_progress_bar=bool(t.enable_progress_bar),
        enable_model_summary=False,
        enable_checkpointing=checkpointing,
        num_sanity_val_steps=0,
        log_every_n_steps=int(t.log_every_n_steps),
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=list(callbacks),
    )


def fit_model(cls, dm, params: dict, cfg: DictConfig, run_dir: Path, logger=False, callbacks=(),
              resume_from: Path | None = None):
    """Build ``cls`` from the datamodule (``from_datamodule``) with ``params`` and train it (continuing the
    training state of checkpoint ``resume_from`` when given)."""
    model: PromoModel = cls.from_datamodule(dm, **params)
    clock = EpochClock()
    trainer = build_trainer(cfg, run_dir, logger, [*callbacks, clock], checkpointing=bool(callbacks), cls=cls)
    started = clock.started = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
    model.fit_seconds = time.perf_counter() - started
    model.epoch_end_seconds = clock.ends
    return model, trainer


class EpochClock(pl.Callback):
    """Seconds from the start of ``fit`` to the end of each training epoch (its validation included): the
    steady-state epoch time apart from start-up (under DDP: starting the other processes and the group)."""

    def __init__(self):
        self.started, self.ends = time.perf_counter(), []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.ends.append(round(time.perf_counter() - self.started, 4))


class RandomStates(pl.Callback):
    """Keeps the torch, numpy and Python random states in every checkpoint and restores them on resume, so a
    resumed run draws the same dropout masks (and other random numbers) as an uninterrupted one. Written
    here: Lightning checkpoints carry no random state."""

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                           int(has_gauss), float(cached)],
                "python": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


def resume_point(cfg: DictConfig) -> tuple[Path | None, Path]:
    """(checkpoint to continue from or None, run folder) of ``resume``: a killed run's folder (its
    ``checkpoints/last.ckpt``; the run continues in that folder) or a checkpoint file."""
    resume, run_dir = cfg.get("resume"), Path(cfg.paths.output_dir)
    if resume is None:
        return None, run_dir
    path = Path(str(resume))
    if path.is_dir():
        run_dir, path = path, path / "checkpoints" / "last.ckpt"
        if not path.exists():
            raise ConfigError(f"resume={resume}: the folder has no checkpoints/last.ckpt (the run ended before "
                              "its first epoch did); start it again instead")
    from deepromo.serving.checkpoints import read_checkpoint, verify_content

    ckpt = read_checkpoint(str(path))
    verify_content(str(path), ckpt[CHECKPOINT_KEY], ckpt["state_dict"])
    if ckpt[CHECKPOINT_KEY].get("model") != cfg.model.name:
        raise ConfigError(f"resume={resume}: that checkpoint is of model '{ckpt[CHECKPOINT_KEY].get('model')}', "
                          f"not model={cfg.model.name}")
    if "loops" not in ckpt:
        raise ConfigError(f"resume={resume}: '{path}' is a lean model file without training state; resume from a "
                          "run folder or its checkpoints/last.ckpt")
    return path, run_dir


def restore_best_weights(model: PromoModel, checkpoint: pl.callbacks.ModelCheckpoint) -> None:
    """Load the weights of the best validation epoch (by the model's monitor metric) into ``model``: what is
    evaluated, saved and registered is the best epoch, not the last one."""
    best = checkpoint.best_model_path
    if best and Path(best).exists():
        state = torch.load(best, map_location=model.device, weights_only=True)["state_dict"]
        model.load_state_dict(state)
        model.on_fit_end()  # state derived from the weights (gat's serving vectors) follows the restored ones
        log.info("evaluating the best validation epoch (%s = %.4f)", checkpoint.monitor,
                 float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else float("nan"))


def tracker_run_id(cfg: DictConfig, run_dir: Path) -> str | None:
    """The MLflow run to log into: ``logger.run_id``, else the one a resumed run folder recorded."""
    if cfg.logger.get("run_id") or cfg.get("resume") is None:
        return cfg.logger.get("run_id")
    record = run_dir / TRACKING_RECORD
    return json.loads(record.read_text()).get("mlflow_run_id") if record.exists() else None


def end_tracker_run(logger, status: str) -> None:
    """Mark the MLflow run ``status`` (FAILED, KILLED): a run that died never stays RUNNING or FINISHED."""
    if isinstance(logger, pl.loggers.MLFlowLogger):
        try:
            logger.experiment.set_terminated(logger.run_id, status=status)
        except Exception as exc:  # the tracker itself may be what failed; the original error matters more
            log.warning("could not mark MLflow run %s %s: %s", logger.run_id, status, exc)


def make_logger(cfg: DictConfig, run_dir: Path, run_id: str | None = None):
    """MLflow (default, local SQLite store), CSV, or none: ``logger=mlflow|csv|none``."""
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return pl.loggers.CSVLogger(save_dir=str(run_dir), name="csv")
    if kind == "mlflow":
        from deepromo.serving.tracking import use_tracking

        uri = use_tracking(cfg.logger.tracking_uri)  # the registry and pyfunc logging use the same store
        return pl.loggers.MLFlowLogger(
            experiment_name=cfg.logger.experiment_name,
            tracking_uri=uri,
            run_name=cfg.logger.run_name,
            artifact_location=cfg.logger.get("artifact_location"),
            run_id=run_id,
            log_model=False,
        )
    raise ConfigError(f"unknown logger.kind '{kind}'; expected one of ['mlflow', 'csv', 'none']")


def curated_params(cfg: DictConfig, model: PromoModel) -> dict[str, Any]:
    """A flat set of params for the tracker (MLflow caps value length, so no nested blobs)."""
    params = {"model": cfg.model.name, "data": cfg.data.source, "seed": cfg.seed, "split": str(cfg.data.split)}
    for k, v in model.hparams.items():
        if k != "spec":
            params[f"model.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
    for k, v in OmegaConf.to_container(cfg.data.options, resolve=True).items():
        params[f"data.{k}"] = v
    for k, v in view_options(cfg).items():
        params[f"data.view_options.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
    params["trainer.max_epochs"] = cfg.trainer.max_epochs
    params["data.batch_size"] = cfg.data.batch_size
    return {k: (str(v)[:500] if isinstance(v, str) else v) for k, v in params.items()}


@dataclass
class TrainedRun:
    """What one training job leaves behind: the metrics dict (also in metrics.json), the canonical data, the
    trained model, its datamodule and test evaluation, the run folder, the tracker run id (None without MLflow)
    and the files the task and model wrote ({name: path}: plots, explanations, allocation plan)."""

    results: dict[str, Any]
    data: Any
    model: PromoModel
    dm: Any
    evaluation: Any
    run_dir: Path
    mlflow_run_id: str | None
    outputs: dict[str, Path]


def run(cfg: DictConfig, callbacks: tuple = ()) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data``, evaluate it against its baselines, write outputs.

    callbacks: extra Lightning callbacks for the main model's Trainer (e.g. a tuning pruner).
    Returns the metrics dict (see :func:`train_and_evaluate` for the model and data as well).
    """
    return train_and_evaluate(cfg, callbacks).results


def view_options(cfg: DictConfig) -> dict[str, Any]:
    """The task view's own settings (``data.view_options``; none by default)."""
    return to_primitive(cfg.data.get("view_options")) or {}


def prepare_data(cfg: DictConfig, cls):
    """(canonical data, set-up datamodule) of ``cfg.data`` for model class ``cls``: source -> its task's view
    -> its task's datamodule."""
    data = load_source(cfg.data.source, **OmegaConf.to_container(cfg.data.options, resolve=True))
    dm = model_datamodule(cls, data, batch_size=int(cfg.data.batch_size), split=cfg.data.get("split"),
                          seed=int(cfg.data.get("split_seed", cfg.seed)), params=to_primitive(cfg.model.params),
                          view_options=view_options(cfg))
    log.info("data '%s': %d rows (train %d / val %d / test %d)", cfg.data.source, len(dm.view),
             *(len(dm.indices[s]) for s in ("train", "val", "test")))
    return data, dm


def train_and_evaluate(cfg: DictConfig, callbacks: tuple = ()) -> TrainedRun:
    """The job behind :func:`run`, returning the trained model, datamodule and evaluation too."""
    quiet_lightning()
    check_train_config(cfg)
    resume_from, run_dir = resume_point(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.get("threads") is not None:
        torch.set_num_threads(int(cfg.trainer.threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cls = get_model_class(cfg.model.name)
    check_model_params(cfg, cls.defaults)
    data, dm = prepare_data(cfg, cls)

    logger = make_logger(cfg, run_dir, tracker_run_id(cfg, run_dir))
    if isinstance(logger, pl.loggers.MLFlowLogger) and is_rank_zero_process():  # a resumed run continues it
        (run_dir / TRACKING_RECORD).write_text(json.dumps({"mlflow_run_id": logger.run_id}))
    try:
        return evaluate_trained(cfg, cls, data, dm, logger, run_dir, callbacks, resume_from)
    except BaseException as exc:
        end_tracker_run(logger, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def evaluate_trained(cfg: DictConfig, cls, data, dm, logger, run_dir: Path, callbacks: tuple,
                     resume_from: Path | None) -> TrainedRun:
    """Fit, score against the baselines, plot, register and log (the body of :func:`train_and_evaluate`)."""
    task = get_task(cls.task)
    register = registry_enabled(cfg, logger)  # checked before training: a bad setting must not cost a run
    check_baselines(cfg.model.get("baselines") or {}, task, cls)
    monitor, mode = cls.monitor
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"), monitor=monitor, mode=mode, save_last=True, filename="best"
    )
    callbacks = [checkpoint, RandomStates(), *extra_callbacks(cfg, monitor, mode), *callbacks]
    params = to_primitive(cfg.model.params)
    model, trainer = fit_model(cls, dm, params, cfg, run_dir, logger, callbacks, resume_from)
    if cfg.callbacks.get("evaluate_best", True):
        restore_best_weights(model, checkpoint)
    val_logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}  # test clears them
    trainer.test(model, datamodule=dm, verbose=False)  # under DDP each rank scores its share, metrics reduced
    if trainer.world_size > 1:
        if leave_distributed_training(trainer):  # a DDP rank other than 0: rank 0 evaluates and writes alone
            return TrainedRun({"rank": trainer.global_rank, "val": val_logged}, data, model, dm, None, run_dir, None, {})
        cfg = single_process_config(cfg)  # the baselines train in this one process
    val_eval = task.evaluate({cfg.model.name: task.model_outputs(model, dm, task.splits_to_score("val"))}, dm, "val")
    model_path = run_dir / "model.ckpt"
    model.drift_reference = training_reference(model, dm)  # what scoring-time drift is measured against
    model.save(model_path)

    splits = task.splits_to_score("test")
    predictions = {cfg.model.name: task.model_outputs(model, dm, splits)}
    variants: dict[str, Any] = {}  # the same model variant is trained once even if two baselines use it
    skipped = {}
    for name, options in (cfg.model.get("baselines") or {}).items():
        reason = task.skip_reason(to_primitive(options) or {}, dm)
        if reason:
            log.warning("baseline %s skipped: %s", name, reason)
            skipped[name] = reason
            continue
        predictions[name] = run_baseline(name, options, cls, task, dm, params, cfg, run_dir, variants, splits)
    evaluation = task.evaluate(predictions, dm, "test")

    results = {
        "model": cfg.model.name,
        "data": cfg.data.source,
        "target": evaluation.target,
        "n_test": evaluation.n_test,
        "fit_seconds": round(model.fit_seconds, 2),
        "epoch_end_seconds": model.epoch_end_seconds,  # since the start of fit, one per training epoch
        "trained_steps": int(trainer.global_step),
        "val": {
            **val_logged,
            **{f"val/{k}": v for k, v in val_eval.table[cfg.model.name].items()},
        },
        "test": evaluation.table,
        **({"skipped_baselines": skipped} if skipped else {}),
        "model_path": str(model_path),
    }
    if resume_from is not None:
        results["resumed_from"] = str(resume_from)
    outputs = {**task.plots(evaluation, dm, run_dir), **model.extra_outputs(dm, run_dir)}
    if cfg.model.get("allocation"):
        section, paths = task.decide(cfg.model.allocation, predictions[cfg.model.name]["test"], dm, run_dir,
                                     seed=int(cfg.seed))
        results["allocation"] = section
        outputs.update(paths)
    if register and trainer.global_step == 0:
        log.warning("not registered: the run made no training step, so there is no trained model to register")
    elif register:  # before metrics.json is written, so the file (and its MLflow copy) names the version
        results["registered"] = register_model_version(cfg, logger, model, model_path, dm)
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\n{cfg.model.name} on {cfg.data.source}: test metrics against {evaluation.target} "
          f"(n={evaluation.n_test})\n{format_table(evaluation.table)}\n\noutputs in {run_dir}")
    if logger:
        log_to_tracker(logger, cfg, model, results, [run_dir / "metrics.json", *outputs.values(), model_path])
    run_id = logger.run_id if isinstance(logger, pl.loggers.MLFlowLogger) else None
    return TrainedRun(results, data, model, dm, evaluation, run_dir, run_id, outputs)


def leave_distributed_training(trainer: pl.Trainer) -> bool:
    """End a DDP run's process group after the main model's fit and test; True on the ranks other than 0.

    Rank 0 then goes on as a single process: the evaluation, the baselines (trained in this one process, so the
    samplers no longer shard) and every output file are its alone; the other ranks stop here."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return trainer.global_rank != 0
    dist.barrier()
    dist.destroy_process_group()
    return trainer.global_rank != 0


def single_process_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` with a one-process trainer on the same accelerator (what rank 0 trains the baselines with)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes = "auto", 1, 1
    return cfg


def is_rank_zero_process() -> bool:
    """False in the extra processes Lightning's DDP launcher starts (they carry a non-zero rank in the environment)."""
    return all(int(os.environ.get(name, 0)) == 0 for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def registry_enabled(cfg: DictConfig, logger) -> bool:
    """``registry.register``: true (needs logger=mlflow), false, or auto (register when logging to MLflow)."""
    mode = str(cfg.registry.register).lower()
    is_mlflow = isinstance(logger, pl.loggers.MLFlowLogger)
    if mode == "true" and not is_mlflow:
        raise ConfigError(f"registry.register=true needs logger=mlflow (got logger={cfg.logger.kind})")
    if mode not in ("true", "false", "auto"):
        raise ConfigError(f"registry.register must be true, false or auto, got '{cfg.registry.register}'")
    return is_mlflow and mode in ("true", "auto")


def register_model_version(cfg: DictConfig, logger, model: PromoModel, model_path: Path, dm) -> dict:
    """Log the pyfunc model into the run, register a new version, point ``registry.alias`` at it."""
    from deepromo.serving import mlflow_model

    example = mlflow_model.input_example(model, dm.view.subset(dm.indices["test"]))
    info = mlflow_model.log_model(
        model, model_path, example, run_id=logger.run_id,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True), registered_name=cfg.registry.name,
    )
    version = info.registered_model_version
    if cfg.registry.alias:
        mlflow_model.set_alias(cfg.registry.name, cfg.registry.alias, version)
    log.info("registered %s version %s%s", cfg.registry.name, version,
             f" as @{cfg.registry.alias}" if cfg.registry.alias else "")
    return {"name": cfg.registry.name, "version": int(version), "alias": cfg.registry.alias, "uri": info.model_uri}


def check_baselines(baselines, task, cls) -> None:
    """Every configured baseline is one of the task's, or a variant with the model's hyper-parameters, and names
    a post-processing step the task has: checked before the model trains."""
    for name, options in baselines.items():
        options = to_primitive(options) or {}
        if "variant" in options:
            unknown = sorted(set(options["variant"] or {}) - set(cls.defaults))
            if unknown:
                raise ConfigError(f"model.baselines.{name}.variant: model '{cls.name}' has no hyper-parameter(s) "
                                  f"{unknown}")
        elif name not in task.baselines:
            raise ConfigError(f"model.baselines.{name}: task '{task.name}' has no baseline of that name; its "
                              f"baselines are {sorted(task.baselines)} (or a variant: {{variant: {{hparam: value}}}})")
        step = options.get("postprocess")
        if step and step not in task.postprocess:
            raise ConfigError(f"model.baselines.{name}.postprocess={step!r}: task '{task.name}' has "
                              f"{sorted(task.postprocess) or 'no post-processing steps'}")


def run_baseline(name: str, options, cls, task, dm, params: dict, cfg: DictConfig, run_dir: Path, variants: dict,
                 splits: tuple[str, ...]) -> dict:
    """``{split: outputs}`` of a baseline: one of the task's own (``task.baselines``), or a variant of the same
    model (``variant: {hparam: value}``), optionally followed by a ``postprocess`` step of the task (e.g.
    isotonic smoothing of its curves)."""
    options = to_primitive(options) or {}
    if "variant" in options:
        key = json.dumps(options["variant"], sort_keys=True)
        if key not in variants:
            # judged like the model itself: on its best validation epoch, not its last
            monitor, mode = cls.monitor
            checkpoint = pl.callbacks.ModelCheckpoint(dirpath=str(run_dir / name / "checkpoints"), monitor=monitor,
                                                      mode=mode, filename="best")
            variant, _ = fit_model(cls, dm, {**params, **options["variant"]}, cfg, run_dir / name,
                                   callbacks=[checkpoint])
            if cfg.callbacks.get("evaluate_best", True):
                restore_best_weights(variant, checkpoint)
            variants[key] = task.model_outputs(variant, dm, splits)
        outputs = variants[key]
    else:
        outputs = task.run_baseline(name, dm, splits, seed=int(cfg.seed))
    step = options.get("postprocess")  # a known step: check_baselines ran before training
    if step:
        outputs = {s: task.postprocess[step](out, dm, s) for s, out in outputs.items()}
    return outputs


def extra_callbacks(cfg: DictConfig, monitor: str, mode: str):
    es = cfg.callbacks.early_stopping
    if es.enabled:
        yield pl.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=int(es.patience))


def log_to_tracker(logger, cfg: DictConfig, model: PromoModel, results: dict, artifacts: list[Path]) -> None:
    """Params, final test metrics per method, resolved config and files to the tracker run."""
    logger.log_hyperparams(curated_params(cfg, model))
    flat = {f"test/{method}/{k}": v for method, row in results["test"].items() for k, v in row.items()}
    flat.update(results["val"])
    flat = {k: v for k, v in flat.items() if v is not None and np.isfinite(v)}
    logger.log_metrics(flat)
    if isinstance(logger, pl.loggers.MLFlowLogger):
        client, run_id = logger.experiment, logger.run_id
        config_path = Path(cfg.paths.output_dir) / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        for path in [*artifacts, config_path]:
            client.log_artifact(run_id, str(path))
        logger.finalize("success")
