"""RFM clustering: choosing k on planted blobs, hand-computed W_k / gap / silhouette / profiles, bad input, plots."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

from deepromo.decide import clustering
from deepromo.decide.clustering import (
    KSelection, fit_segments, gap_statistic, k_elbow, k_gap, plot_k_selection, plot_segment_map, reference_sets,
    rfm_features, segment_profile, select_k,
)

TETRAHEDRON = 6.0 * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)  # 4 equidistant centres
OCTAHEDRON = 8.0 * np.vstack([np.eye(3), -np.eye(3)])  # 6 centres


@pytest.fixture(autouse=True)
def _one_thread():
    # many tiny k-means fits: thread start-up costs more than it saves on 2 cores
    with threadpool_limits(1):
        yield


def _blobs(centers, per_cluster=150, seed=0, std=0.6):
    return make_blobs(n_samples=per_cluster * len(centers), centers=centers, cluster_std=std, random_state=seed)


def _wss(X, labels):
    """Within-cluster sum of squares around each cluster's mean, by hand."""
    return sum(((X[labels == c] - X[labels == c].mean(axis=0)) ** 2).sum() for c in np.unique(labels))


@pytest.mark.parametrize("centers", [TETRAHEDRON, OCTAHEDRON], ids=["k4", "k6"])
def test_select_k_recovers_planted_k(centers):
    X, _ = _blobs(centers)
    sel = select_k(X, ks=range(3, 11), n_refs=5)
    k = len(centers)
    assert (sel.k_gap, sel.k_silhouette, sel.k_elbow, sel.k_bic) == (k, k, k, k)
    assert sel.chosen == k and sel.criterion == "gap"
    assert list(sel.table.index) == list(range(3, 11))
    assert list(sel.table.columns) == ["inertia", "silhouette", "log_w", "ref_log_w", "gap", "gap_sd", "bic"]
    assert sel.table["gap"].idxmax() == k


def test_table_matches_hand_computed_wss_and_silhouette():
    X, _ = _blobs(TETRAHEDRON[:3], per_cluster=60, seed=1)
    ks = [2, 3, 4]
    sel = select_k(X, ks=ks, criterion="silhouette", n_refs=3, seed=0)
    gap = gap_statistic(X, ks, n_refs=3, seed=0)
    for k in ks:
        labels, km = fit_segments(X, k, seed=0)  # same k-means settings as select_k / gap_statistic
        w = _wss(X, labels)
        assert sel.table.loc[k, "inertia"] == pytest.approx(w, rel=1e-9)
        assert sel.table.loc[k, "log_w"] == pytest.approx(np.log(w), rel=1e-9)
        assert gap.loc[k, "log_w"] == pytest.approx(np.log(w), rel=1e-9)
        assert sel.table.loc[k, "silhouette"] == pytest.approx(silhouette_score(X, labels), rel=1e-12)
    pd.testing.assert_frame_equal(sel.table[list(gap.columns)], gap)  # one implementation of the gap
    assert sel.chosen == sel.k_silhouette == 3


def test_gap_and_sd_by_hand(monkeypatch):
    # 1-D data {0, 0.5, 10, 10.5}: 2-means W = 2 · 0.125 = 0.25. Reference sets replaced by {0, d, 10, 10 + d}
    # with d = 1, 2, 3: W* = d²/2 + d²/2 = d² -> log W* = log 1, log 4, log 9.
    X = np.array([[0.0], [0.5], [10.0], [10.5]])
    refs = np.array([[[0.0], [d], [10.0], [10.0 + d]] for d in (1.0, 2.0, 3.0)])
    monkeypatch.setattr(clustering, "reference_sets", lambda X, n_refs, rng, reference: refs)
    g = gap_statistic(X, [2], n_refs=3)
    log_ref = np.log([1.0, 4.0, 9.0])
    mean = log_ref.mean()
    sd = np.sqrt(((log_ref - mean) ** 2).mean()) * np.sqrt(1 + 1 / 3)
    assert g.loc[2, "log_w"] == pytest.approx(np.log(0.25))
    assert g.loc[2, "ref_log_w"] == pytest.approx(mean)
    assert g.loc[2, "gap"] == pytest.approx(mean - np.log(0.25))
    assert g.loc[2, "gap_sd"] == pytest.approx(sd)


def test_reference_sets_cover_the_right_box():
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, size=400)
    X = np.column_stack([t, t + 0.05 * rng.normal(size=400)])  # a thin diagonal band
    box = reference_sets(X, 3, np.random.default_rng(1), "box")
    pca = reference_sets(X, 3, np.random.default_rng(1), "pca")
    assert box.shape == pca.shape == (3, 400, 2)
    assert (box >= X.min(axis=0)).all() and (box <= X.max(axis=0)).all()
    # "pca" draws stay in the band (small spread across the diagonal); "box" fills the square
    assert np.abs(pca[..., 1] - pca[..., 0]).max() < 0.5 < np.abs(box[..., 1] - box[..., 0]).max()


def test_subsample_when_larger_than_max_rows():
    X, _ = _blobs(TETRAHEDRON, per_cluster=100)
    g = gap_statistic(X, [3, 4], n_refs=2, max_rows=150)
    rows = np.sort(np.random.default_rng(0).choice(len(X), size=150, replace=False))
    _, kmeans = fit_segments(X[rows], 4, method="kmeans", seed=0)  # the same k-means fit, on the subsample
    assert g.loc[4, "log_w"] == pytest.approx(np.log(kmeans.inertia_))


def test_choice_rules_on_hand_tables():
    t = pd.DataFrame({"gap": [0.1, 0.5, 0.55, 0.9], "gap_sd": [0.1, 0.1, 0.1, 0.1]}, index=[2, 3, 4, 5])
    assert k_gap(t) == 3  # 0.1 < 0.5 − 0.1; 0.5 >= 0.55 − 0.1
    t["gap"] = [0.1, 0.3, 0.5, 0.7]
    assert k_gap(t) == 5  # rule never holds -> largest gap
    inertia = pd.Series([100.0, 60.0, 20.0, 18.0, 17.0], index=[2, 3, 4, 5, 6])
    assert k_elbow(inertia) == 4


def test_fit_segments_relabels_by_monetary_and_recovers_clusters():
    centers = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 8.0], [0.0, 6.0, -6.0]])
    arr, truth = _blobs(centers, per_cluster=100, seed=3)
    X = pd.DataFrame(arr, columns=["recency", "frequency", "monetary"])
    for method in ("kmeans", "gmm"):
        labels, est = fit_segments(X, 3, method=method)
        assert labels.dtype == np.int64 and labels.shape == (300,)
        assert adjusted_rand_score(truth, labels) > 0.95
        means = X["monetary"].groupby(labels).mean()
        assert list(means.index) == [0, 1, 2] and means.is_monotonic_decreasing
        np.testing.assert_array_equal(est.predict(arr), labels)  # estimator permuted to match
    labels, _ = fit_segments(arr, 3)  # plain array: ordered by the first column
    assert pd.Series(arr[:, 0]).groupby(labels).mean().is_monotonic_decreasing


def _tiny_rfm():
    rfm = pd.DataFrame(
        {"recency_days": [1.0, 3.0, 20.0, 30.0, 40.0, 2.0],
         "frequency": [10, 8, 1, 2, 0, 5],
         "monetary": [500.0, 300.0, 10.0, 20.0, 0.0, 50.0]},
        index=pd.Index([11, 12, 13, 14, 15, 16], name="customer_id"),
    )
    labels = np.array([0, 0, 1, 1, 1, 2])
    outcomes = pd.DataFrame(  # shuffled: looked up by customer_id
        {"purchased": [1, 0, 1, 0, 1, 1], "treatment": [1, 1, 1, 0, 0, 1]}, index=[16, 15, 14, 13, 12, 11]
    )
    return rfm, labels, outcomes


def test_segment_profile_hand_values():
    rfm, labels, outcomes = _tiny_rfm()
    p = segment_profile(rfm, labels, outcomes)
    assert p.index.name == "segment" and list(p.index) == [0, 1, 2]
    assert list(p.columns) == ["n_customers", "share", "recency_days_mean", "frequency_mean", "monetary_mean",
                               "purchase_rate", "response_rate", "control_rate", "uplift", "description"]
    assert p["n_customers"].tolist() == [2, 3, 1]
    np.testing.assert_allclose(p["share"], [2 / 6, 3 / 6, 1 / 6])
    np.testing.assert_allclose(p["recency_days_mean"], [2.0, 30.0, 2.0])
    np.testing.assert_allclose(p["frequency_mean"], [9.0, 1.0, 5.0])
    np.testing.assert_allclose(p["monetary_mean"], [400.0, 10.0, 50.0])
    # per customer 11..16: purchased 1, 1, 0, 1, 0, 1; treatment 1, 0, 0, 1, 1, 1
    np.testing.assert_allclose(p["purchase_rate"], [1.0, 1 / 3, 1.0])
    np.testing.assert_allclose(p["response_rate"], [1.0, 0.5, 1.0])
    np.testing.assert_allclose(p["control_rate"], [1.0, 0.0, np.nan])
    np.testing.assert_allclose(p["uplift"], [0.0, 0.5, np.nan])  # segment 2 has no controls
    # population means: recency 16, frequency 13/3, monetary 880/6
    assert p["description"].tolist() == [
        "recent · frequent · high spend", "lapsed · infrequent · low spend", "recent · frequent · low spend",
    ]
    plain = segment_profile(rfm, labels, outcomes[["purchased"]])
    assert "purchase_rate" in plain and "uplift" not in plain
    assert "purchase_rate" not in segment_profile(rfm, labels)


def test_rfm_features_log_zscore_by_hand():
    rfm = pd.DataFrame({"recency_days": [0.0, 9.0, 99.0], "frequency": [3, 3, 3], "monetary": [1.0, 0.0, 7.0]},
                       index=pd.Index([5, 6, 7], name="customer_id"))
    f = rfm_features(rfm)
    assert list(f.columns) == ["recency", "frequency", "monetary"] and list(f.index) == [5, 6, 7]
    r = np.log([1.0, 10.0, 100.0])
    m = np.log([2.0, 1.0, 8.0])
    np.testing.assert_allclose(f["recency"], (r - r.mean()) / r.std())
    np.testing.assert_allclose(f["monetary"], (m - m.mean()) / m.std())
    assert f["frequency"].tolist() == [0.0, 0.0, 0.0]  # zero variance -> 0, not NaN


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda X, rfm: select_k(np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X)), "X: expected finite"),
        (lambda X, rfm: gap_statistic(X[:, 0], [2]), "X: expected a non-empty 2-D"),
        (lambda X, rfm: select_k(X[:6], ks=[2, 6]), "ks: .*n_rows = 6"),
        (lambda X, rfm: select_k(X, ks=[1, 3]), "ks: "),
        (lambda X, rfm: select_k(X, ks=[]), "ks: "),
        (lambda X, rfm: select_k(X, criterion="aic"), "criterion: .*'gap'.*'aic'"),
        (lambda X, rfm: gap_statistic(X, [2], reference="grid"), "reference: .*'pca'"),
        (lambda X, rfm: fit_segments(X, 3, method="dbscan"), "method: .*'kmeans', 'gmm'.*'dbscan'"),
        (lambda X, rfm: fit_segments(X, 40), "k: .*n = 40"),
        (lambda X, rfm: rfm_features(rfm.drop(columns="monetary")), r"rfm: missing column\(s\) \['monetary'\]"),
        (lambda X, rfm: rfm_features(rfm.assign(frequency=-1)), "rfm: .*negative.*frequency"),
        (lambda X, rfm: rfm_features(rfm.assign(monetary=np.nan)), "rfm: .*NaN.*monetary"),
        (lambda X, rfm: rfm_features(rfm.iloc[:0]), "rfm: .*0 rows"),
        (lambda X, rfm: segment_profile(rfm, [0, 1]), r"labels: expected shape \(6,\)"),
        (lambda X, rfm: segment_profile(rfm, np.zeros(6, int), pd.DataFrame({"treatment": [1] * 6}, index=rfm.index)),
         "outcomes: missing column 'purchased'"),
        (lambda X, rfm: segment_profile(rfm, np.zeros(6, int), pd.DataFrame({"purchased": [2] * 6}, index=rfm.index)),
         "outcomes: .*'purchased'.*0/1"),
        (lambda X, rfm: segment_profile(rfm, np.zeros(6, int), pd.DataFrame({"purchased": [1]}, index=[11])),
         "outcomes: .*missing 5"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match=match):
        call(X, _tiny_rfm()[0])


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(0)
    ks = [3, 4, 5, 6]
    table = pd.DataFrame(
        {"inertia": [90.0, 30.0, 25.0, 22.0], "silhouette": [0.5, 0.7, 0.6, 0.55], "log_w": np.log([90, 30, 25, 22]),
         "ref_log_w": [5.0, 4.9, 4.8, 4.7], "gap": [0.5, 1.5, 1.6, 1.62], "gap_sd": [0.05] * 4,
         "bic": [900.0, 700.0, 710.0, 720.0]},
        index=pd.Index(ks, name="k"),
    )
    sel = KSelection(table=table, k_gap=4, k_silhouette=4, k_elbow=4, k_bic=5, chosen=4, criterion="gap")
    n = 6000  # above the 5000-point scatter cap
    rfm = pd.DataFrame({"recency_days": rng.exponential(30, n), "frequency": rng.poisson(3, n),
                        "monetary": rng.lognormal(3, 1, n)}, index=pd.RangeIndex(n, name="customer_id"))
    paths = [plot_k_selection(sel, tmp_path / "k.png"),
             plot_segment_map(rfm, rng.integers(0, 4, n), tmp_path / "sub" / "map.png")]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
