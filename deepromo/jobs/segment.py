"""The segmentation job behind ``segment.py``: canonical data -> RFM -> choose k -> segments -> profile + plots.

``segment_customers(data, ...)`` is the library call (a :class:`Segmentation`); ``run_segmentation(cfg)`` is the
command: it writes the tables and plots to the run folder and logs them to MLflow. The classic RFM score segments
(champions, loyal, ...) are computed beside the clusters as the rule-based baseline.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from deepromo.data.features import rfm_table
from deepromo.data.sources import load_source
from deepromo.data.tables import CanonicalData
from deepromo.decide.clustering import (
    KSelection,
    fit_segments,
    plot_k_selection,
    plot_segment_map,
    rfm_features,
    segment_profile,
    select_k,
)
from deepromo.decide.rfm import rfm_scores, rfm_segment
from deepromo.jobs.config import ConfigError

log = logging.getLogger("deepromo")

__all__ = ["Segmentation", "customer_rfm", "campaign_outcomes", "segment_customers", "write_segmentation",
           "run_segmentation"]


@dataclass
class Segmentation:
    """Segments of one customer base (every frame indexed by customer_id).

    rfm: recency_days, frequency, monetary. features: the standardised log-RFM matrix clustered (purchasers).
    selection: the k-selection table and each criterion's k. labels: cluster per customer (0 = highest mean
    monetary). rfm_scores: R, F, M quintile scores 1..5. rfm_segment: the classic named RFM segment (from those
    scores). profile / rfm_profile: one row per cluster /
    per named segment (Table 1 shape: RFM means, share, purchase / response / control rates, uplift).
    """

    rfm: pd.DataFrame
    features: pd.DataFrame
    selection: KSelection
    method: str
    labels: pd.Series
    rfm_scores: pd.DataFrame
    rfm_segment: pd.Series
    profile: pd.DataFrame
    rfm_profile: pd.DataFrame

    @property
    def k(self) -> int:
        """Number of segments (the clusters, plus the no-purchase segment when there is one)."""
        return int(self.labels.nunique())

    def frame(self) -> pd.DataFrame:
        """One row per customer: RFM values, cluster and named RFM segment."""
        return self.rfm.assign(segment=self.labels, rfm_segment=self.rfm_segment)


def customer_rfm(data: CanonicalData, columns: dict | None = None) -> pd.DataFrame:
    """RFM per customer: from purchase events up to ``history_end`` when the data have them, else from customer
    columns named in ``columns`` (``recency_days``, ``recency_scale`` = days per unit, ``frequency``,
    ``monetary``; a missing frequency counts every customer once). Returns recency_days, frequency, monetary."""
    ids = data.customers["customer_id"]
    has_purchases = bool((data.events["event_type"] == "purchase").any()) if len(data.events) else False
    if has_purchases and not columns:
        return rfm_table(data.events, ids, as_of=data.history_end)
    if not columns:
        raise ConfigError(f"data '{data.name}' has no purchase events to compute RFM from; name the customer "
                         "columns to use in data.rfm_columns (recency_days, recency_scale, frequency, monetary)")
    c = dict(columns)
    unknown = set(c) - {"recency_days", "recency_scale", "frequency", "monetary"}
    if unknown:
        raise ConfigError(f"rfm_columns: unknown key(s) {sorted(unknown)}; expected recency_days, recency_scale, "
                         "frequency, monetary")
    for key in ("recency_days", "monetary"):
        if not c.get(key):
            raise ConfigError(f"rfm_columns.{key}: expected a customer column name, got {c.get(key)!r}")
    customers = data.customers.set_index("customer_id")
    named = [v for k, v in c.items() if k != "recency_scale" and v]
    missing = [v for v in named if v not in customers.columns]
    if missing:
        raise ConfigError(f"rfm_columns: column(s) {missing} not in the customers table (has "
                         f"{list(customers.columns)})")
    scale = float(c.get("recency_scale") or 1.0)
    return pd.DataFrame({
        "recency_days": customers[c["recency_days"]].to_numpy(dtype=np.float64) * scale,
        "frequency": (customers[c["frequency"]].to_numpy(dtype=np.float64) if c.get("frequency")
                      else np.ones(len(customers))),
        "monetary": customers[c["monetary"]].to_numpy(dtype=np.float64),
    }, index=customers.index)


def campaign_outcomes(data: CanonicalData) -> pd.DataFrame:
    """The logged campaign per customer, indexed by customer_id: purchased (0/1) and treatment (0/1)."""
    outcomes = data.outcomes.set_index("customer_id")[["purchased"]]
    treatment = data.exposures.drop_duplicates("customer_id").set_index("customer_id")["treatment"]
    return outcomes.assign(treatment=treatment.reindex(outcomes.index)).dropna().astype(np.int64)


def segment_customers(data: CanonicalData, ks=range(3, 11), criterion: str = "gap", method: str = "kmeans",
                      n_refs: int = 10, seed: int = 0, max_rows: int = 5000, k: int | None = None,
                      rfm_columns: dict | None = None) -> Segmentation:
    """Cluster the customers of ``data`` on log-RFM; k chosen by ``criterion`` over ``ks`` unless ``k`` is given.

    Customers without any purchase in the history share one RFM point (recency beyond the window, 0, 0): a point
    mass that would take a cluster of its own and distort every criterion. They are left out of the clustering and
    form the last segment (label k, described "no purchase in the history"); clusters 0..k-1 are the purchasers,
    0 = highest mean spend.
    """
    rfm = customer_rfm(data, rfm_columns)
    buyers = (rfm["frequency"] > 0).to_numpy()
    if buyers.sum() <= max(ks):
        raise ConfigError(f"data '{data.name}': only {int(buyers.sum())} customers with a purchase, too few to "
                         f"try k up to {max(ks)}")
    features = rfm_features(rfm[buyers])
    selection = select_k(features, ks=ks, criterion=criterion, n_refs=n_refs, seed=seed, max_rows=max_rows)
    k = int(k or selection.chosen)
    labels = pd.Series(k, index=rfm.index, name="segment", dtype=np.int64)
    labels[buyers] = fit_segments(features, k, method=method, seed=seed)[0]
    scores = rfm_scores(rfm)
    named = rfm_segment(scores)
    outcomes = campaign_outcomes(data).reindex(rfm.index)
    outcomes = outcomes if outcomes.notna().all().all() else None
    codes, names = pd.factorize(named)
    rfm_profile = segment_profile(rfm, codes, outcomes).rename(index=dict(enumerate(names)))
    profile = segment_profile(rfm, labels.to_numpy(), outcomes).drop(columns="description")
    # describe the clusters against the purchasers' means, not a population pulled down by the non-buyers
    buyer_outcomes = outcomes[buyers] if outcomes is not None else None
    described = segment_profile(rfm[buyers], labels[buyers].to_numpy(), buyer_outcomes)["description"]
    profile.insert(0, "description", described.reindex(profile.index).fillna("no purchase in the history"))
    return Segmentation(
        rfm=rfm, features=features, selection=selection, method=method, labels=labels, rfm_scores=scores,
        rfm_segment=named, profile=profile, rfm_profile=rfm_profile,
    )


def write_segmentation(seg: Segmentation, run_dir) -> list[Path]:
    """segments.parquet (one row per customer), segment_profile.csv, rfm_segment_profile.csv, k_selection.csv,
    k_selection.png and segment_map.png in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = [run_dir / "segments.parquet", run_dir / "segment_profile.csv", run_dir / "rfm_segment_profile.csv",
             run_dir / "k_selection.csv"]
    seg.frame().reset_index().to_parquet(paths[0], index=False)
    seg.profile.to_csv(paths[1])
    seg.rfm_profile.to_csv(paths[2])
    seg.selection.table.to_csv(paths[3])
    paths.append(plot_k_selection(seg.selection, run_dir / "k_selection.png"))
    paths.append(plot_segment_map(seg.rfm, seg.labels.to_numpy(), run_dir / "segment_map.png"))
    return paths


def segmentation_options(cfg: DictConfig) -> dict:
    """Keyword arguments of :func:`segment_customers` from the ``segments`` config group and ``data.rfm_columns``."""
    s = cfg.segments
    rfm_columns = cfg.data.get("rfm_columns")
    return {
        "ks": range(int(s.k_min), int(s.k_max) + 1), "criterion": str(s.criterion), "method": str(s.method),
        "n_refs": int(s.n_refs), "seed": int(cfg.seed), "max_rows": int(s.max_rows),
        "k": int(s.k) if s.get("k") else None,
        "rfm_columns": OmegaConf.to_container(rfm_columns, resolve=True) if rfm_columns else None,
    }


def log_artifacts(cfg: DictConfig, run_name: str, metrics: dict, params: dict, paths: list[Path]) -> str | None:
    """A tracker run of its own (``logger=mlflow``) with flat params, metrics and files; returns its run id.
    Uses an explicit client, so no global MLflow state (active run or experiment) is left behind."""
    if cfg.logger.kind != "mlflow":
        return None
    from deepromo.serving.tracking import tracking_client

    client = tracking_client(cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
    experiment_id = (experiment.experiment_id if experiment else
                     client.create_experiment(cfg.logger.experiment_name, cfg.logger.get("artifact_location")))
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:500])
    for key, value in metrics.items():
        if value is not None and np.isfinite(value):
            client.log_metric(run_id, key, float(value))
    for path in paths:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def run_segmentation(cfg: DictConfig) -> dict:
    """``python segment.py data=...``: segment the data's customers, write outputs, log them; returns a summary."""
    run_dir = Path(cfg.paths.output_dir)
    data = load_source(cfg.data.source, **OmegaConf.to_container(cfg.data.options, resolve=True))
    options = segmentation_options(cfg)
    seg = segment_customers(data, **options)
    paths = write_segmentation(seg, run_dir)
    summary = {
        "data": cfg.data.source, "n_customers": len(seg.rfm), "method": seg.method, "k": seg.k,
        "criterion": seg.selection.criterion,
        "k_by_criterion": {"gap": seg.selection.k_gap, "silhouette": seg.selection.k_silhouette,
                           "elbow": seg.selection.k_elbow, "bic": seg.selection.k_bic},
        "profile": json.loads(seg.profile.to_json(orient="index")),
    }
    (run_dir / "segmentation.json").write_text(json.dumps(summary, indent=2, default=float))
    paths.append(run_dir / "segmentation.json")
    params = {"data": cfg.data.source, "method": seg.method, "criterion": seg.selection.criterion,
              "ks": f"{options['ks'].start}..{options['ks'].stop - 1}", "seed": cfg.seed}
    metrics = {"k": seg.k, **{f"k_{name}": v for name, v in summary["k_by_criterion"].items()}}
    summary["mlflow_run_id"] = log_artifacts(cfg, f"segment-{cfg.data.source}", metrics, params, paths)
    print(f"\n{seg.k} segments ({seg.method}, k by {seg.selection.criterion}) of {len(seg.rfm)} customers:\n"
          f"{seg.profile.to_string(float_format=lambda v: f'{v:.3f}')}\n\n"
          f"outputs in {run_dir}")
    return summary

