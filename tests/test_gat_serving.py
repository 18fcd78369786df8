"""gat serving: the per-request numpy ranking equals the torch reference (offer_rules.rank_offers) exactly."""

import numpy as np
import pandas as pd
import pytest
import torch

from deepromo.data.errors import UserInputError
from deepromo.data.tables import DataValidationError
from deepromo.decide.offer_rules import rank_offers
from deepromo.models.gat.serving import NUMPY_RANK_ROWS, rank_row

N_CUSTOMERS, N_OFFERS, HIDDEN = 60, 400, 8


@pytest.fixture(scope="module")
def served():
    """A gat with serving vectors of small integers, so that many offers tie exactly, and rules of every kind."""
    from deepromo.data.graph.build import EDGE_TYPES, NODE_TYPES, reverse_edge_type
    from deepromo.data.spec import FeatureSpec, GraphSpec
    from deepromo.models.gat import GATOfferRanker

    edges = tuple(e for et in EDGE_TYPES for e in (et, reverse_edge_type(et)))
    spec = FeatureSpec(graph=GraphSpec(
        node_types=NODE_TYPES, edge_types=edges,
        num_nodes={"customer": N_CUSTOMERS, "product": 50, "offer": N_OFFERS},
        cat_cardinalities={"customer": [3], "product": [4, 5], "offer": [3]},
        num_features={"customer": 2, "product": 1, "offer": 1}))
    model = GATOfferRanker(spec, hidden=HIDDEN).eval()
    gen = torch.Generator().manual_seed(0)
    model.customer_vectors = torch.randint(-2, 3, (N_CUSTOMERS, HIDDEN + 1), generator=gen).float()
    model.offer_vectors = torch.randint(-2, 3, (N_OFFERS, HIDDEN + 1), generator=gen).float()
    model.customer_vectors[:3] = 0.0  # every offer ties for these customers
    model.customer_ids = torch.arange(N_CUSTOMERS) + 1000
    model.offer_ids = torch.arange(N_OFFERS) + 70_000
    rng = np.random.default_rng(0)
    offers = pd.DataFrame({"offer_id": model.offer_ids.numpy(), "product_id": rng.integers(0, 50, N_OFFERS),
                           "face_value": rng.uniform(1, 20, N_OFFERS), "brand": rng.choice(["a", "b", "c"], N_OFFERS)})
    customer_ids = model.customer_ids.numpy()
    rules = {"stock": pd.DataFrame({"product_id": np.arange(50), "stock": np.where(rng.random(50) < 0.2, 0, 5)}),
             "brand_limits": {"a": 6.0}, "budget_left": 15.0,
             "contacts": pd.DataFrame({"customer_id": customer_ids[[4, 9]], "contacts": 3}), "contact_cap": 3,
             "exclusions": pd.DataFrame({"customer_id": rng.choice(customer_ids, 300),
                                         "offer_id": rng.choice(model.offer_ids.numpy(), 300)})}
    # customer 7 may see only 3 offers: fewer feasible than k
    feasible = model.compile_rules(rules, offers).mask([7])[0]
    keep = np.flatnonzero(feasible)[:3]
    dropped = np.setdiff1d(np.flatnonzero(feasible), keep)
    rules["exclusions"] = pd.concat([rules["exclusions"], pd.DataFrame(
        {"customer_id": customer_ids[7], "offer_id": model.offer_ids.numpy()[dropped]})], ignore_index=True)
    return model, rules, offers


def reference(model, rows, k, mask):
    """The torch path over all the rows at once: what rank_offers answered before the numpy path."""
    scores = (model.customer_vectors[torch.as_tensor(rows)] @ model.offer_vectors.T).float()
    idx, top = rank_offers(scores, torch.from_numpy(mask), k)
    ids = np.where(idx.numpy() >= 0, model.offer_ids.numpy()[idx.clamp(min=0).numpy()], -1)
    return ids, top.numpy()


@pytest.mark.parametrize("k", [1, 5, 10, N_OFFERS + 5])
def test_requests_rank_like_the_torch_reference_with_rules_and_ties(served, k):
    model, rules, offers = served
    compiled = model.compile_rules(rules, offers)
    customers = model.customer_ids.numpy()
    everyone = np.arange(N_CUSTOMERS)
    for case, mask, kwargs in (("no rules", np.ones((N_CUSTOMERS, N_OFFERS), bool), {}),
                               ("compiled", compiled.mask(), {"rules": compiled}),
                               ("raw", compiled.mask(), {"rules": rules, "offers": offers})):
        want_ids, want_scores = reference(model, everyone, k, mask)
        one = [model.rank_offers(customers[[i]], k, **kwargs) for i in everyone]  # one customer per request
        got_ids, got_scores = np.concatenate([o[0] for o in one]), np.concatenate([o[1] for o in one])
        np.testing.assert_array_equal(got_ids, want_ids, err_msg=case)
        np.testing.assert_array_equal(got_scores, want_scores, err_msg=case)
        assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32
        few = model.rank_offers(customers[:NUMPY_RANK_ROWS], k, **kwargs)  # the numpy path for a few rows
        np.testing.assert_array_equal(few[0], want_ids[:NUMPY_RANK_ROWS], err_msg=case)
        np.testing.assert_array_equal(few[1], want_scores[:NUMPY_RANK_ROWS], err_msg=case)
        many = model.rank_offers(customers, k, batch_size=N_CUSTOMERS, **kwargs)  # the torch path
        np.testing.assert_array_equal(many[0], want_ids, err_msg=case)
    # the cases the test is for really occur: full ties, capped customers, fewer feasible offers than k
    ids, _ = model.rank_offers(customers[[0, 4, 7]], 5, rules=compiled)
    assert (ids[1] == -1).all() and (ids[2, :3] >= 0).all() and (ids[2, 3:] == -1).all()
    np.testing.assert_array_equal(model.rank_offers(customers[[0]], 5)[0][0], model.offer_ids.numpy()[:5])


def test_rank_row_equals_rank_offers_on_hard_rows():
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 3, 50).astype(np.float32) for _ in range(20)]  # heavy ties
    rows.append(np.full(50, -np.inf, np.float32))  # feasible -inf scores still beat infeasible offers
    rows.append(np.where(rng.random(50) < 0.5, np.inf, 1.0).astype(np.float32))
    rows.append(rng.normal(size=50).astype(np.float32))
    for scores in rows:
        for mask in (np.ones(50, bool), rng.random(50) < 0.3, np.zeros(50, bool)):
            for k in (1, 3, 10, 60):
                idx, top = rank_offers(torch.from_numpy(scores[None]), torch.from_numpy(mask[None]), k)
                got = rank_row(scores, mask, k)
                np.testing.assert_array_equal(got[0], idx[0].numpy())
                np.testing.assert_array_equal(got[1], top[0].numpy())
    with_nan = rng.normal(size=50).astype(np.float32)
    with_nan[[3, 8]] = np.nan
    mask = np.ones(50, bool)
    mask[3] = False  # NaN where infeasible is allowed, NaN where feasible is refused like rank_offers does
    with pytest.raises(UserInputError, match="1 feasible entries are NaN"):
        rank_row(with_nan, mask, 5)
    mask[8] = False
    np.testing.assert_array_equal(rank_row(with_nan, mask, 5)[0],
                                  rank_offers(torch.from_numpy(with_nan[None]), torch.from_numpy(mask[None]), 5)[0][0])


def test_request_errors_name_the_input(served):
    model, _, _ = served
    with pytest.raises(DataValidationError, match=r"customer_id value\(s\) \[5\]"):
        model.rank_offers([5], k=3)  # one unknown id takes the general look-up and its message
    with pytest.raises(UserInputError, match="k must be an integer >= 1"):
        model.rank_offers([1000], k=0)
