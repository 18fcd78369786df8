"""Customer segmentation from RFM features: k-means with k chosen by elbow / silhouette / gap statistic /
GMM BIC, a Gaussian-mixture alternative, a per-segment profile table and plots (vectorised numpy/pandas)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

__all__ = [
    "rfm_features", "gap_statistic", "reference_sets", "KSelection", "select_k", "k_gap", "k_elbow", "fit_segments",
    "segment_profile", "plot_k_selection", "plot_segment_map", "CRITERIA", "METHODS",
]

RFM_COLUMNS = ("recency_days", "frequency", "monetary")
CRITERIA = ("gap", "silhouette", "elbow", "bic")
METHODS = ("kmeans", "gmm")
KMEANS_N_INIT = 4  # restarts per k-means fit; shared by select_k, gap_statistic and fit_segments so W_k agree


# ----------------------------------------------------------------------------------------------- validation


def _check_rfm(rfm: pd.DataFrame, name: str = "rfm") -> pd.DataFrame:
    """The three RFM columns as float64 (same index); ValueError on missing columns, empty input, NaN, < 0."""
    missing = [c for c in RFM_COLUMNS if c not in rfm.columns]
    if missing:
        raise UserInputError(f"{name}: missing column(s) {missing}; expected the output of rfm_table with "
                         f"{list(RFM_COLUMNS)} (has {list(rfm.columns)})")
    if len(rfm) == 0:
        raise UserInputError(f"{name}: expected at least one customer, got 0 rows")
    vals = rfm[list(RFM_COLUMNS)].astype(np.float64)
    bad = vals.columns[vals.isna().any()].tolist()
    if bad:
        raise UserInputError(f"{name}: expected no NaN, found NaN in column(s) {bad}")
    neg = vals.columns[(vals < 0).any()].tolist()
    if neg:
        raise UserInputError(f"{name}: expected non-negative values, found negatives in column(s) {neg}")
    return vals


def _check_X(X, name: str = "X") -> np.ndarray:
    """X as a finite float64 [n, p] array (n >= 1, p >= 1)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserInputError(f"{name}: expected a non-empty 2-D array [n, p], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UserInputError(f"{name}: expected finite values, found {int((~np.isfinite(arr)).sum())} NaN/inf")
    return arr


def _check_ks(ks: Iterable[int], n_rows: int) -> list[int]:
    """Sorted unique ks; each an integer >= 2 and < n_rows (the rows that are clustered)."""
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k for k in ks):
        raise UserInputError(f"ks: expected a non-empty sequence of integers, got {ks!r}")
    ks = sorted({int(k) for k in ks})
    if ks[0] < 2 or ks[-1] >= n_rows:
        raise UserInputError(f"ks: expected integers in [2, n_rows) with n_rows = {n_rows} rows clustered, "
                         f"got ks from {ks[0]} to {ks[-1]}")
    return ks


def _check_labels(labels, n: int) -> np.ndarray:
    """labels as int64 [n]."""
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise UserInputError(f"labels: expected shape ({n},) (one label per rfm row), got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise UserInputError(f"labels: expected integer segment labels, got dtype {lab.dtype}")
    return lab.astype(np.int64)


def _subsample(X: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """X itself when n <= max_rows, else a seeded random subset of max_rows rows (original order kept)."""
    if int(max_rows) != max_rows or max_rows < 2:
        raise UserInputError(f"max_rows: expected an integer >= 2, got {max_rows!r}")
    if len(X) <= max_rows:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=int(max_rows), replace=False))
    return X[rows]


# ----------------------------------------------------------------------------------------------- features


def rfm_features(rfm: pd.DataFrame) -> pd.DataFrame:
    """Clustering features from an RFM table: z-scores of log1p(recency_days, frequency, monetary).

    rfm: [C] rows from :func:`rfm_table` (recency_days [days], frequency [purchases], monetary [currency]).
    Returns DataFrame (same index) with float64 columns recency, frequency, monetary; each has mean 0 and
    population sd 1 (ddof=0), or is all 0 when the column is constant.
    """
    vals = _check_rfm(rfm)
    # RFM columns are heavily right-skewed (a few big spenders / very frequent buyers) and k-means is
    # scale-sensitive (squared Euclidean distance): log1p tames the tails so they do not each claim a
    # cluster, and z-scoring gives the three dimensions equal weight whatever their units.
    logged = np.log1p(vals.to_numpy())
    sd = logged.std(axis=0)
    z = (logged - logged.mean(axis=0)) / np.where(sd > 0, sd, 1.0)  # constant column -> 0, not NaN
    return pd.DataFrame(z, index=rfm.index, columns=["recency", "frequency", "monetary"])


# ----------------------------------------------------------------------------------------------- choosing k


def _kmeans(X: np.ndarray, k: int, seed: int):
    """Fitted sklearn KMeans (fixed restarts and random_state, so W_k is reproducible)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(X)


def reference_sets(X: np.ndarray, n_refs: int, rng: np.random.Generator, reference: str) -> np.ndarray:
    """[n_refs, n, p] uniform draws over the bounding box of X: in its principal-component frame ("pca",
    Tibshirani et al. method b: rotate, draw, rotate back) or of the raw features ("box", method a)."""
    n, p = X.shape
    if reference == "pca":
        mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)  # vt: [min(n, p), p] principal axes
        frame = (X - mean) @ vt.T
        draws = rng.uniform(frame.min(axis=0), frame.max(axis=0), size=(n_refs, n, frame.shape[1]))
        return draws @ vt + mean
    return rng.uniform(X.min(axis=0), X.max(axis=0), size=(n_refs, n, p))


def _gap_table(X: np.ndarray, ks: list[int], log_w: np.ndarray, n_refs: int, seed: int, reference: str) -> pd.DataFrame:
    """Gap table from the data's log W_k [len(ks)] (see gap_statistic); X is the (subsampled) data clustered."""
    if int(n_refs) != n_refs or n_refs < 1:
        raise UserInputError(f"n_refs: expected an integer >= 1, got {n_refs!r}")
    if reference not in ("pca", "box"):
        raise UserInputError(f"reference: expected one of ['pca', 'box'], got {reference!r}")
    refs = reference_sets(X, int(n_refs), np.random.default_rng(seed), reference)
    ref_log_w = np.log([[_kmeans(ref, k, seed).inertia_ for k in ks] for ref in refs])  # [B, K]
    mean_ref = ref_log_w.mean(axis=0)
    return pd.DataFrame(
        {
            "log_w": log_w,
            "ref_log_w": mean_ref,
            "gap": mean_ref - log_w,
            # sd over the B reference sets (1/B, as in the paper) inflated for the simulation error of the mean
            "gap_sd": ref_log_w.std(axis=0) * np.sqrt(1.0 + 1.0 / n_refs),
        },
        index=pd.Index(ks, name="k"),
    )


def gap_statistic(X, ks: Iterable[int], n_refs: int = 10, seed: int = 0, max_rows: int = 5000,
                  reference: str = "pca") -> pd.DataFrame:
    """Gap statistic of Tibshirani, Walther & Hastie (2001) for k-means.

    X: [n, p] features (e.g. rfm_features). W_k = k-means within-cluster sum of squares (inertia);
    Gap(k) = mean_b log W*_kb − log W_k over B = n_refs reference sets of n points drawn uniformly over the
    bounding box of X in its principal-component frame (reference="pca", method b) or of the raw features
    ("box", method a); s_k = sd_b(log W*_kb) · sqrt(1 + 1/B). When n > max_rows, X is replaced by a seeded
    random subsample of max_rows rows (references are drawn with as many rows).
    Returns DataFrame indexed by k (sorted) with columns log_w, ref_log_w (mean_b log W*_kb), gap, gap_sd.
    """
    # Implemented here: no maintained library provides it (the `gap-statistic` PyPI package is unmaintained).
    Xs = _subsample(_check_X(X), max_rows, seed)
    ks = _check_ks(ks, len(Xs))
    log_w = np.log([_kmeans(Xs, k, seed).inertia_ for k in ks])
    return _gap_table(Xs, ks, log_w, n_refs, seed, reference)


@dataclass
class KSelection:
    """Number of segments chosen by each criterion, with the per-k table they were read from.

    table: indexed by k with inertia (W_k), silhouette, log_w, ref_log_w, gap, gap_sd, bic (GMM BIC).
    chosen: the k of `criterion` (one of CRITERIA).
    """

    table: pd.DataFrame
    k_gap: int
    k_silhouette: int
    k_elbow: int
    k_bic: int
    chosen: int
    criterion: str

    @property
    def by_criterion(self) -> dict[str, int]:
        """criterion name -> its k."""
        return {"gap": self.k_gap, "silhouette": self.k_silhouette, "elbow": self.k_elbow, "bic": self.k_bic}


def k_gap(table: pd.DataFrame) -> int:
    """Smallest k with Gap(k) >= Gap(k+1) − s_{k+1} (k+1 = next k in the table); else the k of the largest gap."""
    gap, sd = table["gap"].to_numpy(), table["gap_sd"].to_numpy()
    ok = np.flatnonzero(gap[:-1] >= gap[1:] - sd[1:])
    return int(table.index[ok[0]] if len(ok) else table["gap"].idxmax())


def k_elbow(inertia: pd.Series) -> int:
    """k of the inertia curve farthest below the chord joining its first and last points, with k and inertia
    both scaled to [0, 1] (the first k when no point lies below the chord, e.g. with two ks)."""
    k = inertia.index.to_numpy(dtype=np.float64)
    w = inertia.to_numpy(dtype=np.float64)
    x = (k - k[0]) / max(k[-1] - k[0], 1.0)
    y = (w - w.min()) / max(w.max() - w.min(), np.finfo(float).tiny)
    chord = y[0] + (y[-1] - y[0]) * x
    # perpendicular distance is the vertical gap times a constant factor of the chord's slope: argmax is the same
    return int(inertia.index[int(np.argmax(chord - y))])


def select_k(X, ks: Iterable[int] = range(3, 11), criterion: str = "gap", n_refs: int = 10, seed: int = 0,
             silhouette_rows: int = 5000, max_rows: int = 5000) -> KSelection:
    """Fit k-means for each k and read k off four criteria (gap, silhouette, elbow, GMM BIC).

    X: [n, p] finite features (e.g. rfm_features); when n > max_rows every fit uses the same seeded
    subsample of max_rows rows. Silhouette (sklearn silhouette_score of the k-means labels) is computed on at
    most silhouette_rows of those rows (seeded); BIC is that of a full-covariance GaussianMixture with k
    components on the same rows. ks: integers >= 2, each < the number of rows clustered.
    Returns a KSelection whose `chosen` is the k of `criterion` (one of CRITERIA).
    """
    from sklearn.metrics import silhouette_score
    from sklearn.mixture import GaussianMixture

    if criterion not in CRITERIA:
        raise UserInputError(f"criterion: expected one of {list(CRITERIA)}, got {criterion!r}")
    Xs = _subsample(_check_X(X), max_rows, seed)
    ks = _check_ks(ks, len(Xs))
    if int(silhouette_rows) != silhouette_rows or silhouette_rows <= ks[-1]:
        raise UserInputError(f"silhouette_rows: expected an integer > max(ks) = {ks[-1]}, got {silhouette_rows!r}")
    sample = int(silhouette_rows) if len(Xs) > silhouette_rows else None

    fits = [_kmeans(Xs, k, seed) for k in ks]
    inertia = np.array([f.inertia_ for f in fits])
    table = pd.DataFrame(
        {
            "inertia": inertia,
            "silhouette": [silhouette_score(Xs, f.labels_, sample_size=sample, random_state=seed) for f in fits],
        },
        index=pd.Index(ks, name="k"),
    )
    table = table.join(_gap_table(Xs, ks, np.log(inertia), n_refs, seed, reference="pca"))
    table["bic"] = [GaussianMixture(k, covariance_type="full", random_state=seed).fit(Xs).bic(Xs) for k in ks]

    picks = {
        "gap": k_gap(table),
        "silhouette": int(table["silhouette"].idxmax()),
        "elbow": k_elbow(table["inertia"]),
        "bic": int(table["bic"].idxmin()),
    }
    return KSelection(table=table, k_gap=picks["gap"], k_silhouette=picks["silhouette"], k_elbow=picks["elbow"],
                      k_bic=picks["bic"], chosen=picks[criterion], criterion=criterion)


# ----------------------------------------------------------------------------------------------- segments


def _permute_estimator(est, order: np.ndarray) -> None:
    """Reorder the fitted clusters of a KMeans / GaussianMixture in place: new cluster j = old order[j]."""
    if hasattr(est, "cluster_centers_"):  # KMeans (labels_ is reset by the caller)
        est.cluster_centers_ = est.cluster_centers_[order]
        return
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        setattr(est, attr, getattr(est, attr)[order])


def fit_segments(X, k: int, method: str = "kmeans", seed: int = 0) -> tuple[np.ndarray, object]:
    """Segment customers into k clusters on the whole of X.

    X: [n, p] features (DataFrame or array); method: "kmeans" (KMeans, KMEANS_N_INIT restarts) or "gmm"
    (full-covariance GaussianMixture). Clusters are relabelled so that label 0 has the highest mean of the
    `monetary` column (X a DataFrame with that column; else of the first column), then descending; the
    estimator's clusters are permuted to match, so ``est.predict(X)`` returns the same labels.
    Returns (labels [n] int64 in 0..k−1, fitted estimator).
    """
    from sklearn.mixture import GaussianMixture

    if method not in METHODS:
        raise UserInputError(f"method: expected one of {list(METHODS)}, got {method!r}")
    arr = _check_X(X)
    if isinstance(k, bool) or int(k) != k or not 2 <= k < len(arr):
        raise UserInputError(f"k: expected an integer in [2, n) with n = {len(arr)} rows, got {k!r}")
    k = int(k)
    if method == "kmeans":
        est = _kmeans(arr, k, seed)
        labels = est.labels_
    else:
        est = GaussianMixture(k, covariance_type="full", random_state=seed).fit(arr)
        labels = est.predict(arr)

    key_col = list(X.columns).index("monetary") if isinstance(X, pd.DataFrame) and "monetary" in X.columns else 0
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=arr[:, key_col], minlength=k)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)  # an empty GMM component goes last
    order = np.argsort(-means, kind="stable")  # new label j = old cluster order[j]
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    labels = rank[labels]
    _permute_estimator(est, order)
    if method == "kmeans":
        est.labels_ = labels.astype(est.labels_.dtype)
    return labels.astype(np.int64), est


def _describe(means: pd.DataFrame, population: pd.Series) -> pd.Series:
    """Rule-based segment names, e.g. "recent · frequent · high spend", from means vs population means."""
    recent = np.where(means["recency_days"] < population["recency_days"], "recent", "lapsed")
    frequent = np.where(means["frequency"] > population["frequency"], "frequent", "infrequent")
    spend = np.where(means["monetary"] > population["monetary"], "high spend", "low spend")
    return pd.Series([" · ".join(parts) for parts in zip(recent, frequent, spend)], index=means.index)


def _binary_column(df: pd.DataFrame, col: str) -> np.ndarray:
    """df[col] as float64 [n], checked to hold only 0/1."""
    v = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isin(v, (0.0, 1.0)).all():
        raise UserInputError(f"outcomes: expected column {col!r} to hold 0/1 only, got values "
                         f"{pd.unique(v[~np.isin(v, (0.0, 1.0))])[:5].tolist()}")
    return v


def segment_profile(rfm: pd.DataFrame, labels, outcomes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-segment profile (the shape of Table 1 of the promotion-engine paper).

    rfm: [C] rows of rfm_table; labels: [C] integer segment per rfm row (e.g. from fit_segments).
    outcomes: optional DataFrame indexed by customer_id (looked up by rfm's index; every customer needed)
    with column `purchased` (0/1) and optionally `treatment` (0/1).
    Returns DataFrame indexed by `segment` (sorted labels) with n_customers, share (0..1), recency_days_mean
    [days], frequency_mean, monetary_mean; with outcomes also purchase_rate, and with treatment also
    response_rate (purchase rate of the treated), control_rate (of the untreated) and uplift
    (response_rate − control_rate; NaN where an arm is empty); last a rule-based `description`.
    """
    vals = _check_rfm(rfm)
    lab = _check_labels(labels, len(vals))
    frame = vals.reset_index(drop=True).assign(segment=lab)
    if outcomes is not None:
        if "purchased" not in outcomes.columns:
            raise UserInputError(f"outcomes: missing column 'purchased' (has {list(outcomes.columns)})")
        missing = rfm.index.difference(outcomes.index)
        if len(missing):
            raise UserInputError(f"outcomes: expected a row for every rfm customer_id, missing {len(missing)} "
                             f"e.g. {missing[:5].tolist()}")
        aligned = outcomes.reindex(rfm.index)
        frame["purchased"] = _binary_column(aligned, "purchased")
        if "treatment" in aligned.columns:
            treated = _binary_column(aligned, "treatment") == 1.0
            frame["treated_purchase"] = frame["purchased"].where(treated)  # NaN outside the arm: mean skips it
            frame["control_purchase"] = frame["purchased"].where(~treated)

    g = frame.groupby("segment", sort=True)
    means = g[list(RFM_COLUMNS)].mean()
    out = pd.DataFrame({"n_customers": g.size().astype(np.int64)})
    out["share"] = out["n_customers"] / len(frame)
    out[[f"{c}_mean" for c in RFM_COLUMNS]] = means.to_numpy()
    if "purchased" in frame:
        out["purchase_rate"] = g["purchased"].mean()
    if "treated_purchase" in frame:
        out["response_rate"] = g["treated_purchase"].mean()  # all-NaN group (empty arm) -> NaN
        out["control_rate"] = g["control_purchase"].mean()
        out["uplift"] = out["response_rate"] - out["control_rate"]
    out["description"] = _describe(means, vals.mean())
    return out


# ----------------------------------------------------------------------------------------------- plots


def plot_k_selection(selection: KSelection, path) -> Path:
    """Three panels over k: inertia (elbow), silhouette, gap ± s_k; a vertical line at each criterion's k,
    the chosen one highlighted. Returns the PNG path."""
    from deepromo.reporting.plots import saved_figure

    t = selection.table
    ks = t.index.to_numpy()
    at_k: dict[int, list[str]] = {}
    for name, k in selection.by_criterion.items():
        at_k.setdefault(k, []).append(name)
    path = Path(path)
    with saved_figure(path, nrows=1, ncols=3, figsize=(14, 4.2)) as (fig, axes):
        axes[0].plot(ks, t["inertia"], marker="o", ms=4)
        axes[0].set(title="elbow", ylabel="within-cluster sum of squares W_k")
        axes[1].plot(ks, t["silhouette"], marker="o", ms=4)
        axes[1].set(title="silhouette", ylabel="mean silhouette")
        axes[2].errorbar(ks, t["gap"], yerr=t["gap_sd"], marker="o", ms=4, capsize=3)
        axes[2].set(title="gap statistic (± s_k)", ylabel="Gap(k)")
        for ax in axes:
            for k, names in sorted(at_k.items()):
                chosen = k == selection.chosen
                ax.axvline(k, color="tab:red" if chosen else "grey", ls="-" if chosen else "--",
                           lw=2.0 if chosen else 1.0, alpha=0.9 if chosen else 0.7,
                           label=f"k={k}: {', '.join(names)}" + (" (chosen)" if chosen else ""))
            ax.set_xlabel("k (segments)")
            ax.set_xticks(ks)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Choosing the number of segments: k = {selection.chosen} by {selection.criterion}", fontsize=10)
    return path


def plot_segment_map(rfm: pd.DataFrame, labels, path, max_points: int = 5000, seed: int = 0) -> Path:
    """Scatter of recency_days vs log1p(monetary) coloured by segment (at most max_points customers, seeded
    sample) and a bar panel of segment shares. rfm: [C] rows of rfm_table; labels: [C] int. Returns the PNG path."""
    from deepromo.reporting.plots import saved_figure

    vals = _check_rfm(rfm)
    lab = _check_labels(labels, len(vals))
    rows = np.arange(len(lab))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), size=int(max_points), replace=False))
    segments, counts = np.unique(lab, return_counts=True)
    colors = [f"C{i % 10}" for i in range(len(segments))]
    path = Path(path)
    with saved_figure(path, nrows=1, ncols=2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [2, 1]}) as (
        fig, (map_ax, bar_ax)
    ):
        rec, mon = vals["recency_days"].to_numpy()[rows], np.log1p(vals["monetary"].to_numpy()[rows])
        for seg, color in zip(segments, colors):
            m = lab[rows] == seg
            map_ax.scatter(rec[m], mon[m], s=6, alpha=0.5, color=color, label=f"segment {seg}")
        map_ax.set(xlabel="recency [days since last purchase]", ylabel="log(1 + monetary)",
                   title=f"RFM segment map ({len(rows)} of {len(lab)} customers)")
        map_ax.grid(alpha=0.3)
        map_ax.legend(fontsize=8, markerscale=2)
        bar_ax.bar(np.arange(len(segments)), counts / len(lab), color=colors, tick_label=[str(s) for s in segments])
        bar_ax.set(xlabel="segment", ylabel="share of customers", title="segment shares")
        bar_ax.grid(alpha=0.3, axis="y")
    return path
