"""Drift monitoring: how far a scored batch's features and score have moved from the training data.

A reference profile (``reference_profile``) is computed once when a model is trained and saved in its checkpoint
as JSON, so it travels into the MLflow model and loads with ``weights_only=True``. At scoring time a
``DriftAccumulator`` takes the scored rows chunk by chunk (bounded memory), and ``drift_table`` compares the two:
population stability index (PSI) per feature, a two-sample KS test per numeric feature and the largest category
share shift per categorical one; ``log_drift`` writes the table to MLflow. See docs/scoring.md, "Drift monitoring".
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.encoding import encode, fit_vocabulary
from deepromo.data.errors import UserInputError

log = logging.getLogger("deepromo")

PROFILE_VERSION = 1
DEFAULT_BINS = 10  # numeric features: bins from the training deciles
DEFAULT_SAMPLE_SIZE = 2000  # training values kept per numeric feature for the KS test
DEFAULT_TOP_CATEGORIES = 20  # categorical features: categories profiled by name; the rest pool into OTHER
DEFAULT_RESERVOIR_SIZE = 10_000  # scored values kept per numeric feature (and the score) for the KS test
DEFAULT_PSI_THRESHOLD = 0.2  # the usual rule of thumb: PSI < 0.1 no shift, 0.1-0.2 moderate, >= 0.2 significant
# A bin (or category) empty on one side would make PSI infinite; shares are floored at this value instead, so an
# empty bin that holds 10 % on the other side adds 0.1 * ln(0.1 / 1e-4) = 0.69 (flagged), not infinity.
PSI_EPSILON = 1e-4
OTHER = "(other)"  # the pooled category: rarer training categories, unseen values, and missing/blank/unknown ones
DRIFT_EXPERIMENT = "deepromo-scoring"  # MLflow experiment of the runs log_drift starts when none is active
SCORE_SAMPLE = "\0score"  # the score's reservoir column: apart from a feature that happens to share its name
TABLE_COLUMNS = ["feature", "kind", "psi", "ks_statistic", "ks_pvalue", "max_share_shift", "max_shift_category",
                 "n_reference", "n_scored", "drifted"]


class DriftReferenceError(UserInputError):
    """Drift was asked for but the model carries no (readable) training reference profile."""


# --- the training reference ---------------------------------------------------------------------------------------
def numeric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """[n] float64 values of a numeric column, or an error naming it (non-numbers, NaN, inf)."""
    try:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"drift: column '{column}' must be numeric: {exc}") from None
    if not np.isfinite(values).all():
        raise UserInputError(f"drift: column '{column}' has {int((~np.isfinite(values)).sum())} NaN/inf value(s); "
                             "expected finite numbers")
    return values


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """[n] int64 bin of each value for bins ``(edges[i], edges[i + 1]]`` (``edges`` starts at -inf, ends at +inf)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.searchsorted(inner, values, side="left").astype(np.int64)


def numeric_profile(values: np.ndarray, bins: int, sample_size: int, rng: np.random.Generator) -> dict:
    """Quantile bin edges (deciles for ``bins=10``; repeated quantiles of discrete columns merge), the share of
    ``values`` per bin, and a random sample of at most ``sample_size`` of them for the KS test."""
    # inverted_cdf: the edges are observed values, so a count column's bins hold whole counts (0 | 1-2 | ...)
    inner = np.unique(np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf"))
    edges = [-math.inf, *inner.tolist(), math.inf]
    counts = np.bincount(bin_index(values, edges), minlength=len(edges) - 1)
    sample = values[np.sort(rng.choice(len(values), size=min(len(values), sample_size), replace=False))]
    return {"kind": "numeric", "n": int(len(values)), "edges": edges, "shares": (counts / len(values)).tolist(),
            "sample": sample.tolist()}


def categorical_profile(series: pd.Series, top_categories: int) -> dict:
    """The training share of the ``top_categories`` most frequent known values (strings, as the model's vocabulary
    spells them) and of everything else pooled as ``OTHER``."""
    vocabulary = fit_vocabulary(series)
    counts = np.bincount(encode(series, vocabulary), minlength=len(vocabulary) + 1)[1:]
    order = sorted(range(len(vocabulary)), key=lambda i: (-counts[i], vocabulary[i]))[:top_categories]
    top = [vocabulary[i] for i in order]
    n = len(series)
    shares = [float(counts[i] / n) for i in order]
    return {"kind": "categorical", "n": int(n), "categories": top, "shares": shares,
            "other_share": float(1.0 - sum(counts[i] for i in order) / n)}


def reference_profile(
    frame: pd.DataFrame,
    scores: np.ndarray | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    *,
    score_name: str = "score",
    score_split: str = "val",
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    top_categories: int = DEFAULT_TOP_CATEGORIES,
    seed: int = 0,
) -> dict:
    """The training data's profile that scored batches are compared with (a JSON-ready dict).

    frame: the raw training rows (the feature columns as a user's file holds them: numeric ones before any log1p).
    scores: [m] the model's main score (``score_name``) on the rows of ``score_split``, or None for no score row.
    Numeric features get quantile bins and a KS sample. The sample is a bounded random sample of the training values
    (not fine quantiles) because ``scipy.stats.ks_2samp`` then gives the exact two-sample statistic and a p-value
    that accounts for both sample sizes.
    """
    if len(frame) == 0:
        raise UserInputError("drift: the reference (training) frame is empty (0 rows)")
    missing = [c for c in [*categorical, *numeric] if c not in frame.columns]
    if missing:
        raise UserInputError(f"drift: the reference frame lacks column(s) {missing}; it has {list(frame.columns)}")
    rng = np.random.default_rng(seed)
    features = {}
    for column in categorical:
        features[column] = categorical_profile(frame[column], top_categories)
    for column in numeric:
        features[column] = numeric_profile(numeric_values(frame, column), bins, sample_size, rng)
    score = None
    if scores is not None:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(values) == 0 or not np.isfinite(values).all():
            raise UserInputError(f"drift: the reference scores '{score_name}' are empty or not all finite")
        score = {"name": score_name, "split": score_split, **numeric_profile(values, bins, sample_size, rng)}
    return {"version": PROFILE_VERSION, "features": features, "score": score,
            "settings": {"bins": bins, "sample_size": sample_size, "top_categories": top_categories, "seed": seed}}


def score_column(model) -> str | None:
    """The model's main score: ``score`` (targeting, ranking), else ``p`` (response, purchase), else none."""
    for name in ("score", "p"):
        if name in model.output_columns and name in model.frame_columns():
            return name
    return None


def training_reference(model, dm) -> dict | None:
    """The reference profile of a trained model: its features on the datamodule's training rows and its main
    score on the validation rows (unseen by the weights, like a scored batch: training rows score more extremely
    when a model overfits, which would read as drift); None for models without raw feature columns (gat)."""
    pre = getattr(model, "preprocessor", None)
    if pre is None or not getattr(dm, "indices", None) or not len(dm.indices.get("train", ())):
        return None
    frame = dm.view.frame.iloc[dm.indices["train"]]
    name = score_column(model)
    split = "val" if len(dm.indices.get("val", ())) else "train"
    scores = model.predict_split(dm, split)[name] if name else None
    return reference_profile(frame, scores, pre.categorical, pre.numeric, score_name=name or "score",
                             score_split=split)


def model_reference(model, where: str = "") -> dict:
    """The model's reference profile, or a DriftReferenceError saying why drift cannot be measured."""
    reference = getattr(model, "drift_reference", None)
    if not reference:
        raise DriftReferenceError(
            f"model '{model.name}'{f' ({where})' if where else ''} carries no drift reference profile: it was saved "
            "before deepromo stored one (or has no raw feature columns); retrain it with train.py to monitor drift, "
            "or score without drift")
    if reference.get("version") != PROFILE_VERSION or "features" not in reference:
        raise DriftReferenceError(f"model '{model.name}': its drift reference has version {reference.get('version')!r}"
                                  f"; expected {PROFILE_VERSION}")
    return reference


# --- accumulating scored chunks -----------------------------------------------------------------------------------
class DriftAccumulator:
    """Counts of scored rows per reference bin and category, and a bounded random sample of the numeric values.

    ``update`` takes one chunk at a time, so memory stays bounded by ``reservoir_size`` whatever the number of rows.
    The sample is reservoir sampling by random keys, written here (numpy has no streaming sampler): every row gets
    a uniform key and the ``reservoir_size`` rows with the smallest keys are kept, a uniform sample without
    replacement that does not depend on how the rows were chunked. All rows are kept while they fit, so the KS test
    is then exact.
    """

    def __init__(self, reference: Mapping, reservoir_size: int = DEFAULT_RESERVOIR_SIZE, seed: int = 0):
        if reservoir_size < 1:
            raise UserInputError(f"drift: reservoir_size must be >= 1, got {reservoir_size!r}")
        self.features = reference["features"]
        self.score = reference.get("score")
        self.numeric = [c for c, p in self.features.items() if p["kind"] == "numeric"]
        self.sampled = [*self.numeric, *([SCORE_SAMPLE] if self.score else [])]  # reservoir columns
        self.counts = {c: np.zeros(len(p["edges"]) - 1 if p["kind"] == "numeric" else len(p["categories"]) + 1,
                                   dtype=np.int64) for c, p in self.features.items()}
        self.score_counts = np.zeros(len(self.score["edges"]) - 1, dtype=np.int64) if self.score else None
        self.reservoir_size = int(reservoir_size)
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0, dtype=np.float64)
        self.values = np.zeros((0, len(self.sampled)), dtype=np.float64)
        self.rows = 0

    def update(self, frame: pd.DataFrame, scores: pd.DataFrame | np.ndarray | None = None) -> None:
        """Add one scored chunk: ``frame`` holds the raw feature columns, ``scores`` the model's output frame (or
        the [n] main score), row-aligned with ``frame``."""
        n = len(frame)
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise UserInputError(f"drift: the scored rows lack reference column(s) {missing}")
        columns = {}
        for column, profile in self.features.items():
            if profile["kind"] == "numeric":
                columns[column] = numeric_values(frame, column)
                self.counts[column] += np.bincount(bin_index(columns[column], profile["edges"]),
                                                   minlength=len(self.counts[column]))
            else:  # code 0 = OTHER, i = categories[i - 1]; unknown and unseen values pool into OTHER
                self.counts[column] += np.bincount(encode(frame[column], profile["categories"]),
                                                   minlength=len(self.counts[column]))
        if self.score:
            name = self.score["name"]
            if isinstance(scores, pd.DataFrame):
                if name not in scores.columns:
                    raise UserInputError(f"drift: the scores lack the reference score column '{name}'; they have "
                                         f"{list(scores.columns)}")
                scores = scores[name]
            if scores is None or len(scores) != n:
                raise UserInputError(f"drift: expected {n} '{name}' scores, row-aligned with the chunk; got "
                                     f"{None if scores is None else len(scores)}")
            columns[SCORE_SAMPLE] = np.asarray(scores, dtype=np.float64).reshape(-1)
            self.score_counts += np.bincount(bin_index(columns[SCORE_SAMPLE], self.score["edges"]),
                                             minlength=len(self.score_counts))
        self._sample(columns, n)
        self.rows += n

    def _sample(self, columns: Mapping[str, np.ndarray], n: int) -> None:
        keys = self.rng.random(n)
        entering = keys < self.keys.max() if len(self.keys) >= self.reservoir_size else np.ones(n, dtype=bool)
        new_values = np.column_stack([columns[c][entering] for c in self.sampled]) if self.sampled else \
            np.zeros((int(entering.sum()), 0))
        keys = np.concatenate([self.keys, keys[entering]])
        values = np.concatenate([self.values, new_values])
        if len(keys) > self.reservoir_size:
            kept = np.argpartition(keys, self.reservoir_size - 1)[:self.reservoir_size]
            keys, values = keys[kept], values[kept]
        self.keys, self.values = keys, values

    def sample(self, column: str) -> np.ndarray:
        """The sampled scored values of a numeric feature (all of them while they fit)."""
        return self.values[:, self.sampled.index(column)]

    def score_sample(self) -> np.ndarray:
        """The sampled scores (all of them while they fit)."""
        return self.values[:, self.sampled.index(SCORE_SAMPLE)]


# --- comparing ----------------------------------------------------------------------------------------------------
def population_stability_index(reference_shares: Sequence[float], scored_shares: Sequence[float],
                               epsilon: float = PSI_EPSILON) -> float:
    """PSI = sum over bins of (scored - reference) * ln(scored / reference), shares floored at ``epsilon``."""
    expected = np.maximum(np.asarray(reference_shares, dtype=np.float64), epsilon)
    actual = np.maximum(np.asarray(scored_shares, dtype=np.float64), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_test(reference_sample: Sequence[float], scored_sample: Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of ``scipy.stats.ks_2samp``; NaN for an empty side."""
    if len(reference_sample) == 0 or len(scored_sample) == 0:
        return math.nan, math.nan
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():  # with many ties the exact p-value fails and scipy falls back to asymp itself
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        result = ks_2samp(np.asarray(reference_sample, dtype=np.float64), np.asarray(scored_sample, dtype=np.float64))
    return float(result.statistic), float(result.pvalue)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.full(len(counts), math.nan)


def _numeric_row(feature: str, kind: str, profile: Mapping, counts: np.ndarray, sample: np.ndarray) -> dict:
    scored = int(counts.sum())
    psi = population_stability_index(profile["shares"], _shares(counts)) if scored else math.nan
    statistic, pvalue = ks_test(profile["sample"], sample)
    return {"feature": feature, "kind": kind, "psi": psi, "ks_statistic": statistic, "ks_pvalue": pvalue,
            "max_share_shift": math.nan, "max_shift_category": None, "n_reference": int(profile["n"]),
            "n_scored": scored}


def _categorical_row(feature: str, profile: Mapping, counts: np.ndarray) -> dict:
    scored = int(counts.sum())
    reference = np.asarray([profile["other_share"], *profile["shares"]])
    names = [OTHER, *profile["categories"]]
    psi, shift, category = math.nan, math.nan, None
    if scored:
        shares = _shares(counts)
        psi = population_stability_index(reference, shares)
        largest = int(np.argmax(np.abs(shares - reference)))
        shift, category = float(shares[largest] - reference[largest]), names[largest]
    return {"feature": feature, "kind": "categorical", "psi": psi, "ks_statistic": math.nan, "ks_pvalue": math.nan,
            "max_share_shift": shift, "max_shift_category": category, "n_reference": int(profile["n"]),
            "n_scored": scored}


def check_thresholds(threshold: float, ks_pvalue_threshold: float | None = None,
                     share_shift_threshold: float | None = None) -> None:
    """Refuse a threshold that is not a positive number (p-values and shares also at most 1), naming it."""
    for name, value, most in (("threshold", threshold, math.inf), ("ks_pvalue_threshold", ks_pvalue_threshold, 1.0),
                              ("share_shift_threshold", share_shift_threshold, 1.0)):
        if value is None and name != "threshold":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= most:
            expected = "a number > 0" if most == math.inf else f"a number in (0, {most:g}]"
            raise UserInputError(f"drift: {name} must be {expected}, got {value!r}")


def drift_table(
    reference: Mapping,
    accumulated: DriftAccumulator,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    ks_pvalue_threshold: float | None = None,
    share_shift_threshold: float | None = None,
) -> pd.DataFrame:
    """One row per feature (reference order) and one for the score (kind ``score``), columns ``TABLE_COLUMNS``.

    psi: over the reference's bins (numeric) or its categories plus ``OTHER`` (categorical).
    ks_statistic, ks_pvalue: two-sample KS of the reference sample against the scored sample (numeric, score).
    max_share_shift: scored minus training share of the category that moved most (signed; categorical), named in
    max_shift_category. drifted: psi >= threshold, or ks_pvalue < ks_pvalue_threshold, or |max_share_shift| >=
    share_shift_threshold (the last two only when given). Rows with nothing scored have NaN and are not drifted.
    """
    check_thresholds(threshold, ks_pvalue_threshold, share_shift_threshold)
    rows = []
    for feature, profile in reference["features"].items():
        counts = accumulated.counts[feature]
        if profile["kind"] == "numeric":
            rows.append(_numeric_row(feature, "numeric", profile, counts, accumulated.sample(feature)))
        else:
            rows.append(_categorical_row(feature, profile, counts))
    score = reference.get("score")
    if score:
        rows.append(_numeric_row(score["name"], "score", score, accumulated.score_counts, accumulated.score_sample()))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS[:-1])
    drifted = table["psi"].to_numpy() >= threshold
    if ks_pvalue_threshold is not None:
        drifted |= table["ks_pvalue"].to_numpy() < ks_pvalue_threshold
    if share_shift_threshold is not None:
        drifted |= np.abs(table["max_share_shift"].to_numpy()) >= share_shift_threshold
    table["drifted"] = drifted  # NaN comparisons are False: a row with nothing scored is never flagged
    return table


def drift_summary(table: pd.DataFrame, threshold: float = DEFAULT_PSI_THRESHOLD,
                  ks_pvalue_threshold: float | None = None, share_shift_threshold: float | None = None) -> str:
    """One line: how many features drifted (with their PSI), by which rule, and the score's PSI."""
    features = table[table["kind"] != "score"]
    flagged = features[features["drifted"]].sort_values("psi", ascending=False)
    listed = ", ".join(f"{r.feature} {r.psi:.2f}" for r in flagged.itertuples())
    rules = [f"PSI >= {threshold:g}"]
    rules += [f"KS p < {ks_pvalue_threshold:g}"] if ks_pvalue_threshold is not None else []
    rules += [f"share shift >= {share_shift_threshold:g}"] if share_shift_threshold is not None else []
    line = f"drift: {len(flagged)} of {len(features)} feature(s) flagged ({' or '.join(rules)})"
    line += f": {listed}" if listed else ""
    score = table[table["kind"] == "score"]
    if len(score):
        row = score.iloc[0]
        line += f"; score '{row['feature']}' PSI {row['psi']:.2f}{' (drifted)' if row['drifted'] else ''}"
    return line


# --- writing and logging ------------------------------------------------------------------------------------------
def default_table_path(output_path: str | Path) -> Path:
    """``<output stem>.drift.csv`` beside the scores (``scores.parquet`` -> ``scores.drift.csv``)."""
    output_path = Path(output_path)
    stem = output_path.name
    for suffix in (".parquet", ".pq"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return output_path.with_name(f"{stem}.drift.csv")


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the drift table as CSV (``.csv``) or Parquet (``.parquet``, ``.pq``), by suffix."""
    path = Path(path)
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".csv"):
        table.to_csv(path, index=False)
    elif name.endswith((".parquet", ".pq")):
        table.to_parquet(path, index=False)
    else:
        raise UserInputError(f"drift table '{path}': unsupported suffix '{path.suffix}'; expected .csv, .parquet "
                             "or .pq")
    return path


def metric_key(name: str) -> str:
    """An MLflow metric name for a feature (MLflow allows letters, digits, ``_ - . / :`` and spaces)."""
    return re.sub(r"[^\w\-./: ]", "_", name)


def log_drift(table: pd.DataFrame, artifact_file: str = "drift/drift.json", table_path: str | Path | None = None,
              tracking_uri: str | None = None, tags: Mapping[str, str] | None = None) -> str | None:
    """Log the drift table to MLflow: to the active run if there is one, else to a new run of experiment
    ``DRIFT_EXPERIMENT`` in the store at ``tracking_uri``; nothing (None) when neither. Returns the run id.

    Writes the table with ``mlflow.log_table`` (``artifact_file``), the table file (``table_path``) as an
    artifact under ``drift/``, metrics ``drift/psi/<feature>``, ``drift/score_psi`` and ``drift/n_drifted``, and
    ``tags``.
    """
    mlflow = sys.modules.get("mlflow")  # a run can only be active if the caller imported mlflow
    active = mlflow.active_run() if mlflow is not None else None
    if active is None and tracking_uri is None:
        return None
    from deepromo.serving.tracking import disable_telemetry, tracking_client

    disable_telemetry()
    import mlflow

    started = None
    if active is None:
        client = tracking_client(tracking_uri)
        experiment = client.get_experiment_by_name(DRIFT_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(DRIFT_EXPERIMENT)
        started = active = mlflow.start_run(experiment_id=experiment_id, run_name="drift")
    try:
        mlflow.log_table(data=table, artifact_file=artifact_file)
        if table_path is not None:
            mlflow.log_artifact(str(table_path), artifact_path="drift")
        metrics = {"drift/score_psi" if r.kind == "score" else f"drift/psi/{metric_key(r.feature)}": float(r.psi)
                   for r in table.itertuples() if math.isfinite(r.psi)}
        metrics["drift/n_drifted"] = float(table.loc[table["kind"] != "score", "drifted"].sum())
        mlflow.log_metrics(metrics)
        if tags:
            mlflow.set_tags(dict(tags))
    finally:
        if started is not None:
            mlflow.end_run()
    log.info("drift table logged to MLflow run %s", active.info.run_id)
    return active.info.run_id
