"""Hillstrom e-mail uplift: deepromo's splc and dipn vs the classic uplift learners on a real randomised trial.

The MineThatData e-mail campaign (64,000 customers randomised into Mens / Womens / No e-mail; see
``deepromo/data/sources/hillstrom.py``) is read from a local CSV (``--path``); nothing is downloaded.
Treatment = any e-mail vs none (``--arm any``) or one arm vs none; outcome = ``visit`` or ``conversion``
within two weeks (``--outcome``).

For each seed: a held-out test split (``--test-share``, stratified on treatment x outcome); every method
learns from the remaining development rows only and ranks the test customers for the e-mail:

- ``splc``: deepromo's registered two-stage model, trained exactly as ``train.py model=splc`` trains it
  (the task's ``make_datamodule`` + ``jobs.train.fit_model`` with the config's hyper-parameters); ranked by its
  targeting score P(active) x P(prompted). ``splc p_prompted`` (diagnostic) ranks by P(prompted) alone.
- ``dipn``: deepromo's isotonic response network, same code path; ranked by its predicted uplift
  p(x, treated) - p(x, control), read off its response curve.
- ``T-learner`` / ``S-learner``: scikit-learn ``HistGradientBoostingClassifier`` (defaults), one model per
  group / one model with the treatment as a feature.
- ``class transformation``: Jaskowski & Jaroszewicz (2012), the same classifier on z = y t + (1 - y)(1 - t).
- ``random``: uniform random scores (the floor).
- reference rows from scikit-uplift (``sklift``), only when it is importable (it is not a dependency).

Metrics (``deepromo.metrics.uplift``) on the test rows: normalised Qini coefficient, AUUC and uplift@10/20/30 %
(treated minus control rate among the top k %), mean ± sd over seeds; Qini curves of seed 0 in one PNG.

    python benchmarks/hillstrom_uplift.py                          # 5 seeds, visit, any e-mail vs none
    python benchmarks/hillstrom_uplift.py --quick                  # smoke run: 1 seed, 20 % of rows, 2 epochs
    python benchmarks/hillstrom_uplift.py --arm mens --outcome conversion --path /data/hillstrom.csv
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import RESULTS_DIR, markdown_table, write_results  # noqa: E402

NAME = "hillstrom_uplift"
DEFAULT_PATH = ROOT.parent / "shared" / "data" / "hillstrom.csv"  # ../shared/data/hillstrom.csv from the repo root
DEFAULT_EPOCHS = 30  # the trainer config default (configs/trainer/default.yaml)
TEST_SHARE = 0.3
VAL_SHARE = 0.15  # deep models: share of the development rows for Lightning's validation loop (logged only)
UNUSED_TEST_SHARE = 0.02  # deep models: the datamodule's own test split, unused (the held-out rows are the test)
TOP_SHARES = (0.1, 0.2, 0.3)
METRICS = ("qini", "auuc", *(f"uplift@{round(k * 100)}%" for k in TOP_SHARES))
CORE_METHODS = ("splc", "splc p_prompted", "dipn", "T-learner", "S-learner", "class transformation", "random")


@dataclass
class HillstromViews:
    """The customer view (splc) and response view (dipn) of one Hillstrom load, row-aligned.

    treatment: [N] bool, e-mailed; outcome: [N] bool, visited or converted; categorical / numeric: the views'
    feature columns.
    """

    customer: object  # deepromo.data.views.TaskView
    response: object
    treatment: np.ndarray
    outcome: np.ndarray
    categorical: list[str]
    numeric: list[str]

    def __len__(self) -> int:
        return len(self.outcome)

    def subset(self, rows: np.ndarray) -> HillstromViews:
        return HillstromViews(self.customer.subset(rows), self.response.subset(rows), self.treatment[rows],
                              self.outcome[rows], self.categorical, self.numeric)


def load_views(path, arm: str = "any", outcome: str = "visit") -> HillstromViews:
    """Load the Hillstrom CSV through the ``hillstrom`` source and build both views; a clear error if absent."""
    from deepromo.data.sources import load_source
    from deepromo.data.views import build_view

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Hillstrom CSV not found at '{path}'. Pass --path to a local copy of the MineThatData e-mail "
            f"campaign file (64,000 rows; columns recency, history_segment, history, mens, womens, zip_code, "
            f"newbie, channel, segment, visit, conversion, spend). The project never downloads it."
        )
    data = load_source("hillstrom", path=str(path), treatment_arm=arm, outcome=outcome)
    customer, response = build_view("customer", data), build_view("response", data)
    if not np.array_equal(customer.frame["customer_id"].to_numpy(), response.frame["customer_id"].to_numpy()):
        raise RuntimeError("customer and response views are not row-aligned")
    return HillstromViews(
        customer=customer, response=response,
        treatment=response.frame["incentive"].to_numpy() > 0,
        outcome=response.frame["purchased"].to_numpy() > 0,
        categorical=list(customer.categorical), numeric=list(customer.numeric),
    )


def stratified_rows(treatment: np.ndarray, outcome: np.ndarray, share: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, picked) row positions; ``picked`` holds ``share`` of the rows, stratified on treatment x outcome."""
    from sklearn.model_selection import train_test_split

    strata = 2 * treatment.astype(np.int64) + outcome.astype(np.int64)
    rest, picked = train_test_split(np.arange(len(strata)), test_size=share, random_state=seed, stratify=strata)
    return np.sort(rest), np.sort(picked)


# ----------------------------------------------------------------------------------------------
# Classic learners (scikit-learn); each returns the predicted uplift [n_test] of the test rows
# ----------------------------------------------------------------------------------------------


def boosting(seed: int):
    """The one base classifier of every classic learner: scikit-learn defaults (100 iterations, learning rate
    0.1, early stopping on a 10 % validation share above 10,000 rows; pandas categoricals as categories)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def t_learner(X: pd.DataFrame, t: np.ndarray, y: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    """One classifier per group; uplift = p_treated(x) - p_control(x)."""
    treated = boosting(seed).fit(X.loc[t], y[t])
    control = boosting(seed).fit(X.loc[~t], y[~t])
    return treated.predict_proba(X_test)[:, 1] - control.predict_proba(X_test)[:, 1]


def s_learner(X: pd.DataFrame, t: np.ndarray, y: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    """One classifier with the treatment as a feature; uplift = p(x, t=1) - p(x, t=0)."""
    model = boosting(seed).fit(X.assign(treated=t.astype(np.float64)), y)
    return (model.predict_proba(X_test.assign(treated=1.0))[:, 1]
            - model.predict_proba(X_test.assign(treated=0.0))[:, 1])


class ClassTransformationUplift:
    """Class variable transformation (Jaskowski & Jaroszewicz 2012): uplift(x) = 2 P(z = 1 | x) - 1 with
    z = y t + (1 - y)(1 - t) (treated responders and control non-responders are class 1).

    The identity needs a treated share of 1/2; with another share p the rows are weighted 1 / (2p) (treated)
    and 1 / (2 (1 - p)) (control), which makes the weighted share 1/2 (Hillstrom's "any e-mail" has p = 2/3).
    Written by hand because scikit-learn has no uplift wrappers and scikit-uplift, whose ClassTransformation
    assumes p = 1/2, is not a dependency.
    """

    def __init__(self, classifier):
        self.classifier = classifier

    def fit(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> ClassTransformationUplift:
        t, y = t.astype(bool), y.astype(bool)
        z = (y == t).astype(np.int64)
        p = float(t.mean())
        weight = np.where(t, 0.5 / p, 0.5 / (1.0 - p))
        self.classifier.fit(X, z, sample_weight=weight)
        return self

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        return 2.0 * self.classifier.predict_proba(X)[:, 1] - 1.0


def class_transformation(X: pd.DataFrame, t: np.ndarray, y: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    return ClassTransformationUplift(boosting(seed)).fit(X, t, y).predict_uplift(X_test)


def sklift_learners() -> dict[str, Callable]:
    """Reference learners from scikit-uplift when it is importable, else none. Chosen before seeing results:
    the library's variants that extend the vanilla T- and S-learner above (its vanilla ones would repeat them)."""
    try:
        import sklift
        from sklift.models import SoloModel, TwoModels
    except ImportError:
        return {}
    version = getattr(sklift, "__version__", "?")

    def codes(X: pd.DataFrame) -> np.ndarray:  # sklift multiplies features by t: numbers only (category codes)
        return np.column_stack([X[c].cat.codes.to_numpy(np.float64) if isinstance(X[c].dtype, pd.CategoricalDtype)
                                else X[c].to_numpy(np.float64) for c in X.columns])

    def two_models_ddr(X, t, y, X_test, seed):
        model = TwoModels(boosting(seed), boosting(seed), method="ddr_control")
        return model.fit(codes(X), y.astype(int), t.astype(int)).predict(codes(X_test))

    def solo_interaction(X, t, y, X_test, seed):
        model = SoloModel(boosting(seed), method="treatment_interaction")
        return model.fit(codes(X), y.astype(int), t.astype(int)).predict(codes(X_test))

    return {f"sklift {version} TwoModels ddr_control": two_models_ddr,
            f"sklift {version} SoloModel treatment_interaction": solo_interaction}


# ----------------------------------------------------------------------------------------------
# deepromo models, trained through the pipeline's own code path
# ----------------------------------------------------------------------------------------------


def deep_config(model: str, path, arm: str, outcome: str, epochs: int, seed: int, output_dir: Path):
    """The ``train.py`` config of ``model`` on the hillstrom source (its hyper-parameters and trainer settings)."""
    from deepromo.jobs.config import compose_train_config

    return compose_train_config([
        f"model={model}", "data=hillstrom", f"data.options.path={path}", f"data.options.treatment_arm={arm}",
        f"data.options.outcome={outcome}", f"seed={seed}", f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false", "logger=none", f"paths.output_dir={output_dir}",
    ])


def train_deep(model: str, view, cfg, seed: int, output_dir: Path):
    """Train registered model ``model`` on ``view`` (the development rows) as ``deepromo.jobs.train.run`` does."""
    import pytorch_lightning as pl

    from deepromo.models.base import to_primitive
    from deepromo.models.registry import get_model_class
    from deepromo.jobs.train import fit_model
    from deepromo.tasks import get_task

    pl.seed_everything(seed, workers=True, verbose=False)
    cls = get_model_class(model)
    params = to_primitive(cfg.model.params)
    task = get_task(cls.task)
    dm = task.make_datamodule(view, batch_size=cfg.data.batch_size, split=cfg.data.get("split"), seed=seed,
                              options=cls.datamodule_options({**cls.defaults, **params}))
    # make_datamodule does not take the split shares; the held-out rows are the test set, so the datamodule's
    # own test split is cut to a token share and its validation split only feeds Lightning's logged val loop
    dm.val_share, dm.test_share = VAL_SHARE, UNUSED_TEST_SHARE
    dm.setup()
    fitted, _ = fit_model(cls, dm, params, cfg, output_dir)
    return fitted


def splc_scores(model, test_view) -> dict[str, np.ndarray]:
    """splc's targeting score P(active) x P(prompted) and stage 2's P(prompted) alone, [n_test] each."""
    out = model.predict_frame(test_view.frame)
    return {"splc": out["score"].to_numpy(np.float64), "splc p_prompted": out["p_prompted"].to_numpy(np.float64)}


def dipn_uplift(model, test_view) -> np.ndarray:
    """p(x, treated level) - p(x, no e-mail) from dipn's curve over its knots (levels 0 and 1)."""
    from deepromo.tasks import get_task

    task = get_task("response")
    return task.uplift_score(task.frame_outputs(model, test_view.frame))


# ----------------------------------------------------------------------------------------------
# One seed, all seeds, the report
# ----------------------------------------------------------------------------------------------


def uplift_metrics(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> dict[str, float]:
    from deepromo.metrics.uplift import auuc, qini_coefficient, uplift_at_k

    row = {"qini": qini_coefficient(y, t, score), "auuc": auuc(y, t, score)}
    for k, name in zip(TOP_SHARES, METRICS[2:]):
        row[name] = uplift_at_k(y, t, score, k=k)
    return row


def feature_frame(views: HillstromViews, develop_rows: np.ndarray) -> pd.DataFrame:
    """All rows of the views' feature columns that vary in the development rows (Hillstrom has no events: the
    behaviour features of the views are constant and carry nothing)."""
    frame = views.customer.frame
    columns = [c for c in views.categorical + views.numeric if frame[c].iloc[develop_rows].nunique() > 1]
    return frame[columns]


def run_seed(views: HillstromViews, seed: int, epochs: int, test_share: float, path, arm: str, outcome: str,
             work_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Split, fit every method on the development rows, score the held-out rows: per-method scores and times."""
    develop, test = stratified_rows(views.treatment, views.outcome, test_share, seed)
    t_dev, y_dev = views.treatment[develop], views.outcome[develop]
    features = feature_frame(views, develop)
    X_dev, X_test = features.iloc[develop], features.iloc[test]
    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    for model in ("splc", "dipn"):
        started = time.perf_counter()
        cfg = deep_config(model, path, arm, outcome, epochs, seed, work_dir / f"{model}_{seed}")
        view = views.customer if model == "splc" else views.response
        fitted = train_deep(model, view.subset(develop), cfg, seed, work_dir / f"{model}_{seed}")
        if model == "splc":
            scores.update(splc_scores(fitted, view.subset(test)))
        else:
            scores["dipn"] = dipn_uplift(fitted, view.subset(test))
        seconds[model] = time.perf_counter() - started
        log(f"  seed {seed}: {model} trained in {seconds[model]:.0f} s ({epochs} epochs)")

    learners = {"T-learner": t_learner, "S-learner": s_learner, "class transformation": class_transformation,
                **sklift_learners()}
    for name, learner in learners.items():
        started = time.perf_counter()
        scores[name] = learner(X_dev, t_dev, y_dev, X_test, seed)
        seconds[name] = time.perf_counter() - started
    scores["random"] = np.random.default_rng(seed).random(len(test))
    seconds["random"] = 0.0
    seconds["splc p_prompted"] = seconds["splc"]  # the same model

    y_test, t_test = views.outcome[test].astype(np.int64), views.treatment[test].astype(np.int64)
    metrics = {name: uplift_metrics(y_test, t_test, s) for name, s in scores.items()}
    return {"seed": seed, "n_develop": len(develop), "n_test": len(test), "metrics": metrics, "seconds": seconds,
            "scores": scores, "y": y_test, "t": t_test,
            "test_rates": {"treated": float(y_test[t_test == 1].mean()), "control": float(y_test[t_test == 0].mean())}}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd of the finite values (NaN when none; sd 0 for one value)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else 0.0)


def summarise(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """method -> metric -> {mean, sd, per_seed}, methods in run order."""
    methods = list(dict.fromkeys(m for r in runs for m in r["metrics"]))
    summary = {}
    for method in methods:
        summary[method] = {}
        for metric in (*METRICS, "fit_s"):
            per_seed = [r["seconds"][method] if metric == "fit_s" else r["metrics"][method][metric] for r in runs]
            m, sd = mean_sd(per_seed)
            summary[method][metric] = {"mean": m, "sd": sd, "per_seed": per_seed}
    return summary


def table_rows(summary: dict) -> list[dict]:
    rows = []
    for method, metrics in summary.items():
        row = {"method": method}
        for metric in METRICS:
            m, sd = metrics[metric]["mean"], metrics[metric]["sd"]
            row[metric] = "nan" if not math.isfinite(m) else f"{m:.3f} ± {sd:.3f}"
        row["fit s"] = f"{metrics['fit_s']['mean']:.1f}"
        rows.append(row)
    return rows


def run_benchmark(path=DEFAULT_PATH, arm: str = "any", outcome: str = "visit", seeds: Sequence[int] = range(5),
                  epochs: int = DEFAULT_EPOCHS, test_share: float = TEST_SHARE, subsample: float = 1.0,
                  plot_path: Path | None = None, threads: int | None = 1,
                  log: Callable[[str], None] = print) -> dict:
    """Run every method for every seed on the same held-out rows; returns summary, table rows and settings.

    subsample: share of the file's rows kept (stratified on treatment x outcome, seed 0) for quick runs.
    plot_path: where the seed-0 Qini curves go (None: no plot). threads: torch threads (None: torch's default).
    """
    import torch

    from deepromo.jobs.train import quiet_lightning

    if not 0 < subsample <= 1:
        raise ValueError(f"subsample must be a share in (0, 1], got {subsample}")
    quiet_lightning()
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    started = time.perf_counter()
    views = load_views(path, arm, outcome)
    n_file = len(views)
    if subsample < 1:
        views = views.subset(stratified_rows(views.treatment, views.outcome, subsample, 0)[1])
    seeds = list(seeds)
    runs = []
    torch_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        with tempfile.TemporaryDirectory(prefix="hillstrom_uplift_") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Lightning's advice on workers and logging intervals
            for seed in seeds:
                run = run_seed(views, seed, epochs, test_share, path, arm, outcome, Path(tmp), log)
                log(f"seed {seed}: " + "  ".join(f"{m} qini {v['qini']:.3f}" for m, v in run["metrics"].items()))
                runs.append(run)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(torch_threads)  # the caller's setting (tests share one process)
    plot = None
    if plot_path is not None:
        from deepromo.reporting.plots import plot_qini_curves

        first = runs[0]
        plot = plot_qini_curves(first["y"], first["t"], first["scores"], plot_path,
                                f"Hillstrom: {arm} e-mail vs none, {outcome} "
                                f"(test split, seed {seeds[0]}, n={first['n_test']})")
    summary = summarise(runs)
    ate = [r["test_rates"]["treated"] - r["test_rates"]["control"] for r in runs]
    return {
        "summary": summary,
        "rows": table_rows(summary),
        "per_seed": [{"seed": r["seed"], "metrics": r["metrics"], "seconds": r["seconds"],
                      "test_rates": r["test_rates"]} for r in runs],
        "settings": {"path": str(path), "arm": arm, "outcome": outcome, "seeds": seeds, "epochs": epochs,
                     "test_share": test_share, "subsample": subsample, "rows_in_file": n_file, "rows_used": len(views),
                     "n_develop": runs[0]["n_develop"], "n_test": runs[0]["n_test"],
                     "torch_threads": used_threads, "references": sorted(sklift_learners())},
        "test_ate": mean_sd(ate),
        "plot": str(plot) if plot else None,
        "elapsed_s": time.perf_counter() - started,
    }


def report_sections(result: dict) -> list[tuple[str, str]]:
    s = result["settings"]
    ate_m, ate_sd = result["test_ate"]
    refs = ("scikit-uplift reference rows: " + ", ".join(s["references"]) + "."
            if s["references"] else "scikit-uplift (sklift) is not importable here: no reference rows.")
    setup = (
        f"Hillstrom e-mail campaign ({s['rows_used']:,} of {s['rows_in_file']:,} rows), treatment = "
        f"{'any e-mail' if s['arm'] == 'any' else s['arm'] + ' e-mail'} vs none, outcome = {s['outcome']} within "
        f"two weeks. Seeds {s['seeds']}: each seed draws a held-out test split of {s['test_share']:.0%} "
        f"({s['n_test']:,} rows; stratified on treatment x outcome) and seeds the models; every method learns "
        f"from the other {s['n_develop']:,} rows only. splc and dipn: the `train.py` config of each model "
        f"(default hyper-parameters), the task's `make_datamodule` + `jobs.train.fit_model`, {s['epochs']} epochs, "
        f"{VAL_SHARE:.0%} of the development rows as Lightning's validation split, torch threads "
        f"{s['torch_threads']}. Classic learners: scikit-learn `HistGradientBoostingClassifier` with defaults on "
        f"the same feature columns (the views' features that vary; Hillstrom has no behaviour events). "
        f"{refs} Observed uplift on the test rows (treated − control {s['outcome']} rate): "
        f"{ate_m:.4f} ± {ate_sd:.4f}. Cells: mean ± sd over seeds; `fit s` = mean seconds to fit and score. "
        f"Total wall time {result['elapsed_s'] / 60:.1f} min."
    )
    metrics = (
        "Qini = normalised Qini coefficient (1 perfect, 0 random), AUUC = normalised area under the uplift curve "
        "(same scale), uplift@k = treated minus control rate among the top k % of the test rows by score; "
        "definitions in `deepromo/metrics/uplift.py` (those of scikit-uplift).\n\n"
        + markdown_table(result["rows"], ["method", *METRICS, "fit s"])
    )
    sections = [("Setup", setup), ("Results", metrics)]
    if result["plot"]:
        sections.append(("Qini curves (seed 0)", f"![Qini curves]({Path(result['plot']).name})"))
    return sections


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default=str(DEFAULT_PATH),
                        help="the Hillstrom CSV (default ../shared/data/hillstrom.csv)")
    parser.add_argument("--arm", choices=("any", "mens", "womens"), default="any", help="treated arm(s) vs no e-mail")
    parser.add_argument("--outcome", choices=("visit", "conversion"), default="visit")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0 .. seeds-1)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="trainer.max_epochs of splc and dipn")
    parser.add_argument("--test-share", type=float, default=TEST_SHARE)
    parser.add_argument("--subsample", type=float, default=1.0, help="share of the file's rows to use")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 20 %% of the rows, 2 epochs")
    parser.add_argument("--name", default=None, help=f"results file name (default {NAME}, {NAME}_quick with --quick)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.subsample, args.epochs = 1, 0.2, 2
    name = args.name or (f"{NAME}_quick" if args.quick else NAME)
    if args.arm != "any" or args.outcome != "visit":
        name = args.name or f"{name}_{args.arm}_{args.outcome}"
    try:
        result = run_benchmark(args.path, args.arm, args.outcome, range(args.seeds), args.epochs, args.test_share,
                               args.subsample, None if args.no_write else RESULTS_DIR / f"{name}_qini.png",
                               args.threads)
    except FileNotFoundError as e:
        parser.exit(2, f"error: {e}\n")
    sections = report_sections(result)
    print()
    for heading, body in sections:
        print(f"## {heading}\n\n{body}\n")
    if not args.no_write:
        data = {k: v for k, v in result.items() if k != "rows"}
        path = write_results(name, "Hillstrom e-mail uplift: deepromo vs classic uplift learners", sections, data)
        print(f"wrote {path} and {result['plot']}")


if __name__ == "__main__":
    main()
