"""The training job behind ``train.py``: data -> view -> fit -> evaluate vs baselines -> outputs.

``run(cfg)`` takes the composed Hydra config (see ``configs/train.yaml``) and returns the metrics
dict it also writes to ``<run_dir>/metrics.json``. Tuning and tests call the same function.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from deepromo.data.sources import load_source
from deepromo.data.views import build_view
from deepromo.evaluation import EVALUATORS, format_table, model_outputs, task_plots
from deepromo.models.base import PromoModel, to_primitive
from deepromo.models.baselines import BASELINES, POSTPROCESS
from deepromo.models.registry import get_model_class

log = logging.getLogger("deepromo")


def quiet_lightning() -> None:
    """Keep the console to what matters: Lightning's device banners and tips, and two warnings
    that do not apply here (pytree deprecation inside Lightning; few-batch logging interval)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def build_trainer(cfg: DictConfig, run_dir: Path, logger=False, callbacks=(), checkpointing: bool = False) -> pl.Trainer:
    t = cfg.trainer
    cap = cfg.model.get("max_epochs")  # an expensive model may cap the epochs (e.g. txl on CPU)
    return pl.Trainer(
        max_epochs=min(int(t.max_epochs), int(cap)) if cap else int(t.max_epochs),
        accelerator=str(t.accelerator),
        devices=t.devices,
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


def fit_model(cls, dm, params: dict, cfg: DictConfig, run_dir: Path, logger=False, callbacks=()):
    """Build ``cls`` from the datamodule's spec + params, train it, and attach the preprocessor."""
    model: PromoModel = cls(dm.spec, **{**cls.hparams_from_data(dm), **params})
    model.preprocessor = dm.preprocessor
    trainer = build_trainer(cfg, run_dir, logger, callbacks, checkpointing=bool(callbacks))
    started = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    model.fit_seconds = time.perf_counter() - started
    return model, trainer


def make_logger(cfg: DictConfig, run_dir: Path):
    """MLflow (default, local SQLite store), CSV, or none: ``logger=mlflow|csv|none``."""
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return pl.loggers.CSVLogger(save_dir=str(run_dir), name="csv")
    if kind == "mlflow":
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.logger.tracking_uri
        import mlflow

        mlflow.set_tracking_uri(uri)  # the registry and pyfunc logging use the same store
        return pl.loggers.MLFlowLogger(
            experiment_name=cfg.logger.experiment_name,
            tracking_uri=uri,
            run_name=cfg.logger.run_name,
            artifact_location=cfg.logger.get("artifact_location"),
            run_id=cfg.logger.get("run_id"),
            log_model=False,
        )
    raise ValueError(f"unknown logger.kind '{kind}'; expected one of ['mlflow', 'csv', 'none']")


def curated_params(cfg: DictConfig, model: PromoModel) -> dict[str, Any]:
    """A flat set of params for the tracker (MLflow caps value length, so no nested blobs)."""
    params = {"model": cfg.model.name, "data": cfg.data.source, "seed": cfg.seed, "split": cfg.data.split}
    for k, v in model.hparams.items():
        if k != "spec":
            params[f"model.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
    for k, v in OmegaConf.to_container(cfg.data.options, resolve=True).items():
        params[f"data.{k}"] = v
    params["trainer.max_epochs"] = cfg.trainer.max_epochs
    params["data.batch_size"] = cfg.data.batch_size
    return {k: (str(v)[:500] if isinstance(v, str) else v) for k, v in params.items()}


@dataclass
class TrainedRun:
    """What one training job leaves behind: the metrics dict (also in metrics.json), the canonical data, the
    trained model, its datamodule and test evaluation, the run folder and the tracker run id (None without MLflow)."""

    results: dict[str, Any]
    data: Any
    model: PromoModel
    dm: Any
    evaluation: Any
    run_dir: Path
    mlflow_run_id: str | None


def run(cfg: DictConfig, callbacks: tuple = ()) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data``, evaluate it against its baselines, write outputs.

    callbacks: extra Lightning callbacks for the main model's Trainer (e.g. a tuning pruner).
    Returns the metrics dict (see :func:`train_and_evaluate` for the model and data as well).
    """
    return train_and_evaluate(cfg, callbacks).results


def train_and_evaluate(cfg: DictConfig, callbacks: tuple = ()) -> TrainedRun:
    """The job behind :func:`run`, returning the trained model, datamodule and evaluation too."""
    quiet_lightning()
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cls = get_model_class(cfg.model.name)

    data = load_source(cfg.data.source, **OmegaConf.to_container(cfg.data.options, resolve=True))
    view = build_view(cls.view, data)
    dm = cls.make_datamodule(view, batch_size=cfg.data.batch_size, split=cfg.data.split,
                             seed=int(cfg.data.get("split_seed", cfg.seed)), params=to_primitive(cfg.model.params))
    dm.setup()
    log.info("data '%s': %d rows (train %d / val %d / test %d)", cfg.data.source, len(view),
             *(len(dm.indices[s]) for s in ("train", "val", "test")))

    logger = make_logger(cfg, run_dir)
    register = registry_enabled(cfg, logger)  # checked before training: a bad setting must not cost a run
    monitor, mode = cls.monitor
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"), monitor=monitor, mode=mode, save_last=True, filename="best"
    )
    callbacks = [checkpoint, *extra_callbacks(cfg, monitor, mode), *callbacks]
    params = to_primitive(cfg.model.params)
    model, trainer = fit_model(cls, dm, params, cfg, run_dir, logger, callbacks)
    val_eval = EVALUATORS[cls.task]({cfg.model.name: model_outputs(cls.task, model, dm, "val")}, dm, "val")
    trainer.test(model, datamodule=dm, verbose=False)
    model_path = run_dir / "model.ckpt"
    model.save(model_path)

    predictions = {cfg.model.name: model_outputs(cls.task, model, dm)}
    variants: dict[str, Any] = {}  # the same model variant is trained once even if two baselines use it
    for name, options in (cfg.model.get("baselines") or {}).items():
        predictions[name] = run_baseline(name, options, cls, dm, params, cfg, run_dir, variants)
    evaluation = EVALUATORS[cls.task](predictions, dm)

    results = {
        "model": cfg.model.name,
        "data": cfg.data.source,
        "target": evaluation.target,
        "n_test": evaluation.n_test,
        "fit_seconds": round(model.fit_seconds, 2),
        "val": {
            **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
            **{f"val/{k}": v for k, v in val_eval.table[cfg.model.name].items()},
        },
        "test": evaluation.table,
        "model_path": str(model_path),
    }
    plot_paths = task_plots(cls.task, evaluation, dm, run_dir) + model.extra_outputs(dm, run_dir)
    if cls.task == "response" and cfg.model.get("allocation"):
        section, paths = allocation_section(cfg, evaluation.curves[cfg.model.name], dm, run_dir)
        results["allocation"] = section
        plot_paths += paths
    if register:  # before metrics.json is written, so the file (and its MLflow copy) names the version
        results["registered"] = register_model_version(cfg, logger, model, model_path, dm)
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\n{cfg.model.name} on {cfg.data.source}: test metrics against {evaluation.target} "
          f"(n={evaluation.n_test})\n{format_table(evaluation.table)}\n\noutputs in {run_dir}")
    if logger:
        log_to_tracker(logger, cfg, model, results, [run_dir / "metrics.json", *plot_paths, model_path])
    run_id = logger.run_id if isinstance(logger, pl.loggers.MLFlowLogger) else None
    return TrainedRun(results, data, model, dm, evaluation, run_dir, run_id)


def allocation_section(cfg: DictConfig, curve: np.ndarray, dm, run_dir: Path) -> tuple[dict, list[Path]]:
    """Budget scenarios from the model's predicted curves on the test customers (``model.allocation`` config):
    ROI of the optimised plan vs uniform, random and oracle plans, a plot, and the plan as Parquet."""
    from deepromo.decide.scenarios import budget_scenarios, plan_frame, plot_roi_by_budget, scenario_table
    from deepromo.evaluation import true_curves

    a = cfg.model.allocation
    levels = tuple(dm.spec.treatment.levels)
    frame = dm.view.frame.iloc[dm.indices["test"]]
    margin = purchase_margin(frame, a)
    true = true_curves(dm, "test", levels)
    report, plans = budget_scenarios(curve, levels, margin, true, dict(a.scenarios), a.cost_model, a.contact_cost,
                                     seed=int(cfg.seed))
    print(f"\nallocation ({'judged on the true curves' if true is not None else 'judged on the predictions'}):\n"
          f"{scenario_table(report)}")
    plan_path = run_dir / "allocation_plan.parquet"
    plan_frame(plans[a.plan_scenario], frame["customer_id"], levels, curve, margin, a.cost_model,
               a.contact_cost).to_parquet(plan_path, index=False)
    report["judged_on"] = "true curves" if true is not None else "predicted curves"
    return report, [plot_roi_by_budget({k: v for k, v in report.items() if isinstance(v, dict)},
                                       run_dir / "roi_by_budget.png"), plan_path]


def purchase_margin(frame, allocation: DictConfig) -> np.ndarray:
    """[n] margin of one purchase per row (money) from the ``model.allocation`` settings: ``margin_column`` x
    ``margin_rate``, or the flat ``margin``; rows without a positive value get the median positive margin."""
    a = allocation
    margin = (frame[a.margin_column].to_numpy(dtype=np.float64) * a.margin_rate if a.margin_column
              else np.full(len(frame), float(a.margin)))
    return np.where(margin > 0, margin, np.median(margin[margin > 0]) if np.any(margin > 0) else 1.0)


def registry_enabled(cfg: DictConfig, logger) -> bool:
    """``registry.register``: true (needs logger=mlflow), false, or auto (register when logging to MLflow)."""
    mode = str(cfg.registry.register).lower()
    is_mlflow = isinstance(logger, pl.loggers.MLFlowLogger)
    if mode == "true" and not is_mlflow:
        raise ValueError(f"registry.register=true needs logger=mlflow (got logger={cfg.logger.kind})")
    if mode not in ("true", "false", "auto"):
        raise ValueError(f"registry.register must be true, false or auto, got '{cfg.registry.register}'")
    return is_mlflow and mode in ("true", "auto")


def register_model_version(cfg: DictConfig, logger, model: PromoModel, model_path: Path, dm) -> dict:
    """Log the pyfunc model into the run, register a new version, point ``registry.alias`` at it."""
    from deepromo import registry_mlflow

    example = registry_mlflow.input_example(model, dm.view.subset(dm.indices["test"]))
    info = registry_mlflow.log_model(
        model, model_path, example, run_id=logger.run_id,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True), registered_name=cfg.registry.name,
    )
    version = info.registered_model_version
    if cfg.registry.alias:
        registry_mlflow.set_alias(cfg.registry.name, cfg.registry.alias, version)
    log.info("registered %s version %s%s", cfg.registry.name, version,
             f" as @{cfg.registry.alias}" if cfg.registry.alias else "")
    return {"name": cfg.registry.name, "version": int(version), "alias": cfg.registry.alias, "uri": info.model_uri}


def run_baseline(name: str, options, cls, dm, params: dict, cfg: DictConfig, run_dir: Path, variants: dict):
    """A classic baseline from BASELINES, or a variant of the same model (``variant: {hparam: value}``),
    optionally followed by a ``postprocess`` step from POSTPROCESS (e.g. isotonic smoothing of its curves)."""
    options = to_primitive(options) or {}
    if "variant" in options:
        key = json.dumps(options["variant"], sort_keys=True)
        if key not in variants:
            variant, _ = fit_model(cls, dm, {**params, **options["variant"]}, cfg, run_dir / name)
            variants[key] = model_outputs(cls.task, variant, dm)
        outputs = variants[key]
    elif name in BASELINES:
        outputs = BASELINES[name](dm, seed=int(cfg.seed))
    else:
        raise KeyError(f"unknown baseline '{name}'; valid baselines are {sorted(BASELINES)} or a model variant")
    if options.get("postprocess"):
        outputs = POSTPROCESS[options["postprocess"]](outputs, dm)
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
