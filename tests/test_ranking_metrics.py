"""Ranking metrics against hand-computed values (log2 discount), ties, exclusions and skipped queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepromo.metrics.ranking import ranking_report

L3 = 1.0 / math.log2(3.0)  # discount of rank 2
L4 = 1.0 / math.log2(4.0)  # discount of rank 3

SCORES = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5],
                       [0.1, 0.4, 0.3, 0.2, 0.5],
                       [0.3, 0.2, 0.1, 0.0, 0.5]])
RELEVANT = torch.tensor([[0, 1, 0, 1, 0],     # relevant at ranks 2 and 4
                         [1, 0, 0, 0, 0],     # relevant at rank 5
                         [0, 0, 0, 0, 0]]).bool()  # no relevant item: skipped


def test_hand_computed_values():
    out = ranking_report(SCORES, RELEVANT, k=3)
    # query 0: DCG@3 = 1/log2(3); IDCG@3 = 1 + 1/log2(3); query 1: nothing in the top 3
    ndcg0 = L3 / (1.0 + L3)
    assert out["ndcg@3"] == pytest.approx((ndcg0 + 0.0) / 2, abs=1e-6)
    assert out["mrr"] == pytest.approx((1 / 2 + 1 / 5) / 2, abs=1e-6)
    assert out["hit_rate@3"] == pytest.approx((1 + 0) / 2, abs=1e-6)
    assert out["recall@3"] == pytest.approx((1 / 2 + 0) / 2, abs=1e-6)
    assert out["n_queries"] == 2 and out["n_skipped"] == 1


def test_k_covering_everything():
    out = ranking_report(SCORES, RELEVANT, k=5)
    ndcg0 = (L3 + 1.0 / math.log2(5.0)) / (1.0 + L3)
    ndcg1 = (1.0 / math.log2(6.0)) / 1.0
    assert out["ndcg@5"] == pytest.approx((ndcg0 + ndcg1) / 2, abs=1e-6)
    assert out["hit_rate@5"] == pytest.approx(1.0)
    assert out["recall@5"] == pytest.approx(1.0)


def test_list_input_matches_dense_and_allows_ragged_queries():
    dense = ranking_report(SCORES, RELEVANT, k=3)
    lists = ranking_report([s for s in SCORES], [r for r in RELEVANT], k=3)
    for key in dense:
        assert lists[key] == pytest.approx(dense[key], nan_ok=True)
    ragged = ranking_report([np.array([0.2, 0.9]), np.array([0.5, 0.4, 0.3])],
                            [np.array([1, 0]), np.array([0, 0, 1])], k=1)
    assert ragged["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2, abs=1e-6)
    assert ragged["hit_rate@1"] == 0.0


@pytest.mark.parametrize("ties, rank", [("pessimistic", 3), ("index", 2), ("optimistic", 1)])
def test_ties_are_broken_deterministically(ties, rank):
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.1, 0.1]])
    relevant = torch.tensor([[0, 1, 0, 0, 0]]).bool()
    out = ranking_report(scores, relevant, k=2, ties=ties)
    assert out["mrr"] == pytest.approx(1.0 / rank, abs=1e-6)
    expected_ndcg = {1: 1.0, 2: L3, 3: 0.0}[rank]  # ideal DCG@2 = 1
    assert out["ndcg@2"] == pytest.approx(expected_ndcg, abs=1e-6)
    # the same call twice gives the same answer
    assert ranking_report(scores, relevant, k=2, ties=ties) == out


def test_constant_scores_get_no_credit_by_default():
    out = ranking_report(torch.zeros(2, 4), torch.tensor([[1, 0, 0, 0], [0, 0, 1, 1]]).bool(), k=1)
    assert out["hit_rate@1"] == 0.0 and out["ndcg@1"] == 0.0
    assert out["mrr"] == pytest.approx((1 / 4 + 1 / 3) / 2, abs=1e-6)


def test_excluded_items_are_never_ranked():
    exclude = torch.zeros_like(RELEVANT)
    exclude[0, 0] = True   # the top-scored irrelevant item of query 0
    exclude[1, 0] = True   # the only relevant item of query 1 -> query skipped
    out = ranking_report(SCORES, RELEVANT, k=3, exclude=exclude)
    # query 0 becomes: item1 (rel) rank 1, item2 rank 2, item3 (rel) rank 3
    assert out["ndcg@3"] == pytest.approx((1.0 + L4) / (1.0 + L3), abs=1e-6)
    assert out["mrr"] == pytest.approx(1.0)
    assert out["recall@3"] == pytest.approx(1.0)
    assert out["n_queries"] == 1 and out["n_skipped"] == 2
    # an excluded item with a huge score cannot push relevant items out of the top k
    scores = torch.tensor([[100.0, 1.0, 2.0]])
    out = ranking_report(scores, torch.tensor([[1, 1, 0]]).bool(), k=1,
                         exclude=torch.tensor([[True, False, False]]))
    assert out["recall@1"] == 0.0 and out["mrr"] == pytest.approx(0.5)
    out = ranking_report(scores, torch.tensor([[0, 1, 0]]).bool(), k=2,
                         exclude=torch.tensor([[True, False, False]]))
    assert out["hit_rate@2"] == 1.0


def test_no_query_with_relevant_items_gives_nan():
    out = ranking_report(torch.rand(2, 3), torch.zeros(2, 3, dtype=torch.bool), k=2)
    assert math.isnan(out["ndcg@2"]) and out["n_queries"] == 0 and out["n_skipped"] == 2


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="relevant"):
        ranking_report(SCORES, RELEVANT[:, :4], k=3)
    with pytest.raises(ValueError, match="exclude"):
        ranking_report(SCORES, RELEVANT, exclude=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="k must"):
        ranking_report(SCORES, RELEVANT, k=0)
    with pytest.raises(ValueError, match="ties"):
        ranking_report(SCORES, RELEVANT, ties="random")
    bad = SCORES.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ranking_report(bad, RELEVANT)
    # a NaN at an excluded position is fine
    ex = torch.zeros_like(RELEVANT)
    ex[0, 1] = True
    ranking_report(bad, RELEVANT, exclude=ex)
