"""Offer constraint filter: each rule, validation errors, and ranked lists that never hold an excluded offer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from deepromo.decide.offer_rules import OfferRules, RuleValidationError, feasible_mask, rank_offers

CUSTOMERS = np.array([7, 8, 9])
OFFERS = pd.DataFrame({
    "offer_id": [10, 11, 12, 13],
    "product_id": [100, 101, 102, 100],
    "face_value": [5.0, 10.0, 20.0, 15.0],
    "brand": ["acme", "acme", "zeta", "other"],
})


def test_no_rules_everything_feasible():
    m = feasible_mask(CUSTOMERS, OFFERS)
    assert m.shape == (3, 4) and m.dtype == bool and m.all()


def test_out_of_stock_products():
    stock = pd.DataFrame({"product_id": [100, 101, 102], "stock": [0, 3, 1]})
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(stock=stock))
    assert (m == np.array([False, True, True, False])[None, :]).all()
    # an iterable of out-of-stock ids works the same
    assert (feasible_mask(CUSTOMERS, OFFERS, {"stock": [100]}) == m).all()
    # many-to-many: an offer stays feasible while one of its products is in stock
    op = pd.DataFrame({"offer_id": [10, 10, 13], "product_id": [100, 101, 100]})
    m2 = feasible_mask(CUSTOMERS, OFFERS, {"stock": [100], "offer_products": op})
    assert (m2 == np.array([True, True, True, False])[None, :]).all()


def test_brand_discount_limits():
    limits = pd.DataFrame({"brand": ["acme", "zeta"], "max_face_value": [8.0, 20.0]})
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(brand_limits=limits))
    assert (m == np.array([True, False, True, True])[None, :]).all()  # "other" has no limit
    # dict form, brand looked up through the products table
    products = pd.DataFrame({"product_id": [100, 101, 102], "brand": ["acme", "acme", "zeta"]})
    m2 = feasible_mask(CUSTOMERS, OFFERS.drop(columns="brand"),
                       {"brand_limits": {"acme": 8.0, "zeta": 19.0}, "products": products})
    assert (m2 == np.array([True, False, False, False])[None, :]).all()  # offer 13 is an acme product


def test_contact_caps():
    contacts = pd.DataFrame({"customer_id": [7, 9], "contacts": [3, 1]})
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(contacts=contacts, contact_cap=3))
    assert (m == np.array([False, True, True])[:, None]).all()
    # per-customer caps, missing caps fall back to contact_cap
    contacts = pd.DataFrame({"customer_id": [7, 9], "contacts": [3, 1], "cap": [5, 1]})
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(contacts=contacts))
    assert (m == np.array([True, True, False])[:, None]).all()


def test_remaining_budget():
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(budget_left=10.0))
    assert (m == np.array([True, True, False, False])[None, :]).all()


def test_explicit_exclusions():
    ex = pd.DataFrame({"customer_id": [8, 8, 99], "offer_id": [11, 13, 10]})  # customer 99 is not in the rows
    m = feasible_mask(CUSTOMERS, OFFERS, OfferRules(exclusions=ex))
    expected = np.ones((3, 4), bool)
    expected[1, 1] = expected[1, 3] = False
    assert (m == expected).all()


def test_validation_errors_name_the_column():
    with pytest.raises(RuleValidationError, match="'stock'.*missing column.*'stock'"):
        feasible_mask(CUSTOMERS, OFFERS, {"stock": pd.DataFrame({"product_id": [1]})})
    with pytest.raises(RuleValidationError, match="brand_limits.*max_face_value"):
        feasible_mask(CUSTOMERS, OFFERS, {"brand_limits": pd.DataFrame({"brand": ["a"], "max": [1.0]})})
    with pytest.raises(RuleValidationError, match="'contacts'.*'contacts'"):
        feasible_mask(CUSTOMERS, OFFERS, {"contacts": pd.DataFrame({"customer_id": [7]}), "contact_cap": 2})
    with pytest.raises(RuleValidationError, match="face_value"):
        feasible_mask(CUSTOMERS, OFFERS.drop(columns="face_value"), {"budget_left": 3.0})
    with pytest.raises(RuleValidationError, match="exclusions.*offer_id"):
        feasible_mask(CUSTOMERS, OFFERS, {"exclusions": pd.DataFrame({"customer_id": [7]})})
    with pytest.raises(RuleValidationError, match="product_id"):
        feasible_mask(CUSTOMERS, OFFERS, {"stock": pd.DataFrame({"product_id": ["x"], "stock": [0]})})
    with pytest.raises(RuleValidationError, match="unknown rule key"):
        feasible_mask(CUSTOMERS, OFFERS, {"stok": [1]})
    with pytest.raises(RuleValidationError, match="contact_cap"):
        feasible_mask(CUSTOMERS, OFFERS, {"contact_cap": 2})


def test_rank_offers_fewer_feasible_than_k():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7],
                           [0.3, 0.2, 0.1, 0.0],
                           [0.5, 0.5, 0.5, 0.5]])
    mask = torch.tensor([[True, False, True, True],
                         [False, False, False, False],
                         [True, True, False, True]])
    idx, top = rank_offers(scores, mask, k=3)
    assert idx.tolist() == [[3, 2, 0], [-1, -1, -1], [0, 1, 3]]  # ties: lower offer index first
    assert top[0].tolist() == pytest.approx([0.7, 0.5, 0.1])
    assert torch.isinf(top[1]).all()
    idx, top = rank_offers(scores.numpy(), mask.numpy(), k=6)  # k beyond the number of offers
    assert idx.shape == (3, 6) and idx[0].tolist() == [3, 2, 0, -1, -1, -1]
    assert math.isinf(float(top[0, 5]))
    # a feasible offer scored -inf still beats an infeasible one
    idx, _ = rank_offers(torch.tensor([[0.0, -math.inf]]), torch.tensor([[False, True]]), k=1)
    assert idx.tolist() == [[1]]
    with pytest.raises(ValueError, match="mask"):
        rank_offers(scores, mask[:, :3], k=2)
    with pytest.raises(ValueError, match="NaN"):
        rank_offers(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[True, True]]), k=1)
    rank_offers(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[False, True]]), k=1)  # NaN where infeasible


def test_ranked_lists_never_contain_excluded_offers():
    rng = np.random.default_rng(0)
    n_c, n_o, k = 400, 60, 8
    cust = np.arange(1000, 1000 + n_c)
    offers = pd.DataFrame({
        "offer_id": np.arange(n_o) * 3,
        "product_id": rng.integers(0, 25, n_o),
        "face_value": rng.choice([1.0, 5.0, 10.0, 20.0], n_o),
        "brand": rng.choice(["a", "b", "c", "d"], n_o),
    })
    for trial in range(5):
        rules = OfferRules(
            stock=pd.DataFrame({"product_id": np.arange(25), "stock": rng.integers(-1, 3, 25)}),
            brand_limits={"a": 5.0, "b": float(rng.choice([1.0, 10.0]))},
            contacts=pd.DataFrame({"customer_id": cust, "contacts": rng.integers(0, 6, n_c)}),
            contact_cap=int(rng.integers(3, 7)),
            budget_left=float(rng.choice([5.0, 10.0, 20.0])),
            exclusions=pd.DataFrame({"customer_id": rng.choice(cust, 2000), "offer_id": rng.choice(offers["offer_id"], 2000)}),
        )
        mask = feasible_mask(cust, offers, rules)
        # the mask agrees with each rule taken alone
        for field in ("stock", "brand_limits", "budget_left", "exclusions"):
            assert not (mask & ~feasible_mask(cust, offers, {field: getattr(rules, field)})).any()
        scores = torch.from_numpy(rng.normal(size=(n_c, n_o))).float()
        scores[torch.from_numpy(rng.random((n_c, n_o)) < 0.1)] = 0.0  # plenty of ties
        idx, top = rank_offers(scores, torch.from_numpy(mask), k)
        valid = idx >= 0
        rows = torch.arange(n_c)[:, None].expand_as(idx)
        assert torch.from_numpy(mask)[rows[valid], idx[valid]].all(), f"trial {trial}: excluded offer ranked"
        n_feasible = torch.from_numpy(mask.sum(1))
        assert (valid.sum(1) == torch.clamp(n_feasible, max=k)).all()
        assert (valid[:, :-1] | ~valid[:, 1:]).all()  # -1 only at the end
        t = torch.where(valid, top, torch.full_like(top, -math.inf))
        assert (t[:, :-1] >= t[:, 1:]).all()       # descending
        # the chosen scores are the true top-k of the feasible scores
        best = torch.where(torch.from_numpy(mask), scores, torch.full_like(scores, -math.inf))
        expected = torch.sort(best, dim=1, descending=True).values[:, :k]
        assert torch.equal(t, expected)


def _top_k_by_sorting_each_row(scores, mask, k):
    """Reference: each row's feasible offers by (score descending, offer index ascending), the first k,
    padded with -1 / -inf."""
    idx = torch.full((scores.shape[0], k), -1, dtype=torch.long)
    top = torch.full((scores.shape[0], k), -math.inf, dtype=scores.dtype)
    for row in range(scores.shape[0]):
        feasible = sorted(mask[row].nonzero()[:, 0].tolist(), key=lambda offer: (-scores[row, offer].item(), offer))
        best = torch.tensor(feasible[:k], dtype=torch.long)
        idx[row, :len(best)] = best
        top[row, :len(best)] = scores[row, best]
    return idx, top


def test_fast_top_k_matches_the_full_stable_sort_with_ties():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (300, 40), generator=gen).float()  # many ties, some at the k-th place
    scores[:100] = torch.rand(100, 40, generator=gen)                # and rows without ties
    mask = torch.rand(300, 40, generator=gen) > 0.3
    mask[5, :] = False
    mask[6, 3:] = False                                              # fewer feasible offers than k
    for k in (1, 4, 10):
        idx, top = rank_offers(scores, mask, k)
        ref_idx, ref_top = _top_k_by_sorting_each_row(scores, mask, k)
        assert torch.equal(idx, ref_idx) and torch.equal(top, ref_top), k


def test_compiled_rules_give_feasible_mask_row_by_row():
    from deepromo.decide.offer_rules import compile_rules

    offers = pd.DataFrame({"offer_id": [10, 11, 12, 13], "product_id": [1, 2, 3, 1], "face_value": [1.0, 5.0, 2.0, 9.0],
                           "brand": ["a", "b", "a", "b"]})
    rules = {"stock": [2], "brand_limits": {"b": 6.0}, "budget_left": 8.0,
             "contacts": pd.DataFrame({"customer_id": [7], "contacts": [2]}), "contact_cap": 2,
             "exclusions": pd.DataFrame({"customer_id": [5, 5, 9], "offer_id": [10, 12, 10]})}
    customers = [5, 6, 7, 9]
    full = feasible_mask(customers, offers, rules)
    expected = np.array([[0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(full, expected)
    compiled = compile_rules(customers, offers, rules)
    np.testing.assert_array_equal(compiled.mask([3, 0]), expected[[3, 0]])
