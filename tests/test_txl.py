"""txl: relative attention, segment memory, focal loss, padding, streaming."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import deepromo
from deepromo.data.datamodule import PromoDataModule
from deepromo.data.sequences import events_to_history, group_events, history_to_events
from deepromo.data.views import build_view
from deepromo.models.losses import focal_loss
from deepromo.models.registry import get_model_class
from deepromo.models.txl.streaming import StreamingScorer

from conftest import tiny_job

SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 2, "d_inner": 32, "head_hidden": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def purchase_dm(tiny_world):
    dm = PromoDataModule(build_view("purchase", tiny_world), batch_size=128, seed=0, sequence_length=48)
    dm.setup()
    return dm


def make_model(dm, **overrides):
    torch.manual_seed(0)
    cls = get_model_class("txl")
    model = cls(dm.spec, **{**SMALL, "max_len": 48, "seg_len": 8, "mem_len": 48, **overrides})
    model.preprocessor = dm.preprocessor
    return model.eval()


def with_hparams(model, dm, **overrides):
    """The same weights under other segment / memory settings (they own no parameters)."""
    other = make_model(dm, **{**{k: model.hparams[k] for k in SMALL}, **overrides})
    other.load_state_dict(model.state_dict())
    return other.eval()


def long_rows(dm, n=24):
    """Test rows with the longest histories (so several segments are involved), as a batch."""
    lengths = dm.tensors["seq_mask"].sum(1)
    rows = torch.argsort(lengths, descending=True)[:n]
    assert int(lengths[rows].min()) > 16
    return {k: v[rows] for k, v in dm.tensors.items()}


def test_segments_with_memory_equal_full_context(purchase_dm):
    dm = purchase_dm
    batch = long_rows(dm)
    full = make_model(dm, seg_len=48, mem_len=0)  # one segment holding the whole history
    with torch.no_grad():
        expected = full(batch)["logit"]
        for seg_len in (4, 8, 16):
            segmented = with_hparams(full, dm, seg_len=seg_len, mem_len=48)
            torch.testing.assert_close(segmented(batch)["logit"], expected, rtol=1e-5, atol=1e-5)
        # without memory each segment is on its own: the score must change (the memory is really used)
        alone = with_hparams(full, dm, seg_len=8, mem_len=0)
        assert (alone(batch)["logit"] - expected).abs().max() > 1e-3


def test_no_memory_leaks_between_customers(purchase_dm):
    dm = purchase_dm
    model = make_model(dm, seg_len=8, mem_len=16)
    batch = long_rows(dm, 8)
    with torch.no_grad():
        base = model(batch)["logit"]
        # another customer's events change: nobody else's score moves
        changed = {k: v.clone() for k, v in batch.items()}
        changed["seq_cat"][3] = torch.flip(changed["seq_cat"][3], dims=[0]) * changed["seq_mask"][3, :, None]
        changed["seq_num"][3] = changed["seq_num"][3] + 1.0
        after = model(changed)["logit"]
        keep = torch.arange(8) != 3
        assert (after[3] - base[3]).abs() > 1e-4
        torch.testing.assert_close(after[keep], base[keep])
        # the loader's order is irrelevant: a permuted batch gives each customer the same score
        perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
        permuted = model({k: v[perm] for k, v in batch.items()})["logit"]
        torch.testing.assert_close(permuted, base[perm], rtol=1e-5, atol=1e-6)
        # each customer alone in its batch: same score
        single = torch.stack([model({k: v[i:i + 1] for k, v in batch.items()})["logit"][0] for i in range(8)])
        torch.testing.assert_close(single, base, rtol=1e-5, atol=1e-5)


def test_attention_is_causal_and_ignores_padding(purchase_dm):
    dm = purchase_dm
    model = make_model(dm, seg_len=48, mem_len=0)
    batch = long_rows(dm, 4)
    x = model.embed_events(batch["seq_cat"], batch["seq_num"])
    with torch.no_grad():
        h, _ = model.segment_step(x, batch["seq_mask"], None)
        x2 = x.clone()
        x2[:, 40:] += 1.0  # later events change ...
        h2, _ = model.segment_step(x2, batch["seq_mask"], None)
        torch.testing.assert_close(h2[:, :40], h[:, :40])  # ... earlier positions do not
        assert (h2[:, 40:] - h[:, 40:]).abs().max() > 1e-3
        # the same history with more left padding: the same score
        longer = make_model(dm, max_len=64, seg_len=8, mem_len=64)
        longer.load_state_dict(model.state_dict())
        padded = {k: v for k, v in batch.items()}
        for key in ("seq_cat", "seq_num", "seq_mask", "seq_dt"):
            v = batch[key]
            padded[key] = torch.cat([torch.zeros((v.shape[0], 16, *v.shape[2:]), dtype=v.dtype), v], dim=1)
        torch.testing.assert_close(longer.eval()(padded)["logit"], model(batch)["logit"], rtol=1e-5, atol=1e-5)


def test_customer_without_events_gets_finite_score(purchase_dm):
    dm = purchase_dm
    for encoder in ("txl", "gru", "bilstm"):
        model = make_model(dm, encoder=encoder)
        batch = long_rows(dm, 4)
        batch["seq_mask"][0] = False
        batch["seq_cat"][0] = 0
        batch["seq_num"][0] = 0.0
        with torch.no_grad():
            p = model(batch)["p"]
        assert torch.isfinite(p).all(), encoder


def test_focal_loss_reduces_to_weighted_bce_and_has_finite_gradients():
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    alpha_t = 0.75 * y + 0.25 * (1 - y)
    torch.testing.assert_close(focal_loss(logits, y, gamma=0.0, alpha=0.75), (alpha_t * bce).mean())
    torch.testing.assert_close(focal_loss(logits, y, gamma=0.0, alpha=-1), bce.mean())
    # gamma = 2 by hand: -a_t (1 - p_t)^2 log p_t
    p = torch.sigmoid(logits)
    pt = torch.where(y > 0, p, 1 - p)
    torch.testing.assert_close(focal_loss(logits, y, gamma=2.0, alpha=0.75),
                               (-alpha_t * (1 - pt) ** 2 * torch.log(pt)).mean())
    for gamma in (0.0, 0.5, 2.0):
        extreme = torch.tensor([-100.0, -30.0, 30.0, 100.0], requires_grad=True)
        target = torch.tensor([0.0, 1.0, 0.0, 1.0])
        loss = focal_loss(extreme, target, gamma=gamma, alpha=0.75)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all(), gamma


def test_output_bias_starts_at_prior_log_odds(purchase_dm):
    cls = get_model_class("txl")
    prior = cls.hparams_from_data(purchase_dm)["prior"]
    assert prior == pytest.approx(float(purchase_dm.tensors["y"][purchase_dm.indices["train"]].mean()))
    model = make_model(purchase_dm, prior=prior)
    assert model.head[-1].bias.item() == pytest.approx(np.log(prior / (1 - prior)), rel=1e-5)


def test_bad_hyperparameters_are_named(purchase_dm):
    with pytest.raises(ValueError, match="encoder must be one of"):
        make_model(purchase_dm, encoder="lstm")
    with pytest.raises(ValueError, match="d_model=10 must be divisible by n_heads=3"):
        make_model(purchase_dm, d_model=10, n_heads=3)


def test_streaming_equals_full_history(purchase_dm):
    dm = purchase_dm
    model = make_model(dm, seg_len=8, mem_len=48)
    lengths = dm.view.sequences.lengths()
    rows = np.flatnonzero((lengths > 20) & (lengths <= 48))[:6]  # whole histories fit in max_len = 48
    view = dm.view.subset(rows)
    events = view.sequences.events
    frame = view.frame
    expected = model.predict_frame(frame, events=events, as_of=view.sequences.as_of)["p"].to_numpy()
    scorer = StreamingScorer(model, customers=frame)
    # the history arrives in pieces of different sizes, customers interleaved
    ev = events.sort_values("ts", kind="stable").reset_index(drop=True)
    cuts = [0, 5, 6, 40, 41, 90, len(ev)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        scorer.observe(ev.iloc[a:b])
    got = scorer.score(frame["customer_id"], as_of=view.sequences.as_of)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert all(scorer.states[c].n_events == n for c, n in zip(frame["customer_id"], view.sequences.lengths()))
    # out-of-order events are refused with the customer named
    late = ev.iloc[[0]].copy()
    with pytest.raises(ValueError, match=f"customer {late['customer_id'].iloc[0]}: new event at ts="):
        scorer.observe(late)


def test_history_json_round_trip_and_scoring(purchase_dm):
    dm = purchase_dm
    model = make_model(dm)
    view = dm.view.subset(np.arange(10))
    frame = view.frame.copy()
    frame["event_history"] = events_to_history(view.sequences)
    frame["as_of"] = view.sequences.as_of
    events = history_to_events(frame)
    assert len(events) == len(view.sequences.events)
    direct = model.predict_frame(view.frame, events=view.sequences.events, as_of=view.sequences.as_of)
    from_json = model.predict_frame(frame)
    np.testing.assert_allclose(from_json["p"], direct["p"], rtol=1e-5)
    with pytest.raises(ValueError, match="'event_history' column"):
        model.predict_frame(view.frame)


def test_group_events_respects_per_row_as_of():
    events = pd.DataFrame({"customer_id": [1, 1, 1, 2, 2], "ts": [1.0, 2.0, 3.0, 1.5, 9.0],
                           "event_type": ["view"] * 5, "amount": [0.0] * 5})
    seqs = group_events(events, [2, 1], as_of=np.array([5.0, 2.5]))
    assert seqs.lengths().tolist() == [1, 2]
    assert seqs.events["ts"].tolist() == [1.5, 1.0, 2.0]


# --- through train.py's job, predict.py and the MLflow pyfunc (tiny sizes) ---
TXL_METHODS = {"txl", "gru", "bilstm", "txl_no_memory", "gbm_aggregates", "logistic_aggregates"}
TXL_METRICS = {"auc", "pr_auc", "f1", "precision_at_5", "precision_at_10", "ece", "threshold"}


def test_txl_job_learns_and_writes_outputs(tmp_path_factory):
    results, out = tiny_job("txl", tmp_path_factory)
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["test"]) == TXL_METHODS
    for method, row in written["test"].items():
        assert TXL_METRICS <= set(row), method
        for name in ("auc", "pr_auc", "f1", "precision_at_5", "ece"):
            assert 0.0 <= row[name] <= 1.0, (method, name)
    assert written["test"]["txl"]["auc"] > 0.65  # it learns: purchases are predictable from the history
    assert "val/auc" in written["val"] and "val/pr_auc" in written["val"]
    assert (out / "roc_pr.png").stat().st_size > 10_000
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == "txl" and model.preprocessor.events is not None


def test_predict_cli_reads_events(tmp_path_factory, tiny_world, tmp_path):
    import sys

    from conftest import ROOT
    from deepromo.data.views import build_view

    sys.path.insert(0, str(ROOT))
    from predict import main

    _, out = tiny_job("txl", tmp_path_factory)
    model = deepromo.load_model(out / "model.ckpt")
    view = build_view("purchase", tiny_world).subset(np.arange(50))
    customers = tmp_path / "customers.parquet"
    events = tmp_path / "events.csv"
    view.frame.to_parquet(customers)
    view.sequences.events.to_csv(events, index=False)
    target = tmp_path / "scores.parquet"
    main(["--model", str(out / "model.ckpt"), "--input", str(customers), "--events", str(events),
          "--as-of", str(tiny_world.history_end), "--output", str(target), "--no-progress"])
    scored = pd.read_parquet(target)
    expected = model.predict_frame(view.frame, **view.scoring_context())
    np.testing.assert_allclose(scored["p"], expected["p"], rtol=1e-5)
    assert scored["customer_id"].tolist() == view.frame["customer_id"].tolist()
    with pytest.raises(SystemExit) as exc:  # a sequence model without events: one error line, exit 2
        main(["--model", str(out / "model.ckpt"), "--input", str(customers), "--output", str(target)])
    assert exc.value.code == 2


def test_pyfunc_scores_json_histories(tmp_path_factory, tiny_world, mlflow_store):
    import mlflow

    from deepromo.serving import mlflow_model
    from deepromo.data.views import build_view

    _, out = tiny_job("txl", tmp_path_factory)
    model = deepromo.load_model(out / "model.ckpt")
    view = build_view("purchase", tiny_world).subset(np.arange(20))
    example = mlflow_model.input_example(model, view)
    assert {"event_history", "as_of", "customer_id"} <= set(example.columns)
    info = mlflow_model.log_model(model, out / "model.ckpt", example)
    scored = mlflow.pyfunc.load_model(info.model_uri).predict(example)
    expected = model.predict_frame(view.frame.head(5), **view.scoring_context())
    np.testing.assert_allclose(scored["p"], expected["p"], rtol=1e-5)


@pytest.fixture
def streaming(purchase_dm):
    model = make_model(purchase_dm, seg_len=8, mem_len=16)
    view = purchase_dm.view.subset(np.arange(8))
    return model, view


def snapshot(scorer):
    return {c: (s.n_events, s.last_ts, s.mems.clone()) for c, s in scorer.states.items()}


def test_a_failing_update_changes_no_state(streaming):
    model, view = streaming
    scorer = StreamingScorer(model, customers=view.frame)
    events = view.sequences.events.sort_values("ts", kind="stable")
    scorer.observe(events.iloc[:30])
    before = snapshot(scorer)
    late = events.iloc[[0]].assign(ts=-5.0)  # older than what is cached for its customer
    bad = pd.concat([events.iloc[30:40], late])  # so the whole batch is refused, the good events too
    with pytest.raises(ValueError, match="older than its cached newest event"):
        scorer.observe(bad)
    after = snapshot(scorer)
    assert before.keys() == after.keys()
    for cid, (n, ts, mems) in before.items():
        assert after[cid][:2] == (n, ts) and torch.equal(after[cid][2], mems)


def test_a_replayed_event_is_not_counted_twice(streaming):
    model, view = streaming
    scorer = StreamingScorer(model, customers=view.frame)
    events = view.sequences.events.sort_values("ts", kind="stable")
    scorer.observe(events)
    counts = {c: s.n_events for c, s in scorer.states.items()}
    scores = scorer.score(view.frame["customer_id"])
    newest = events.groupby("customer_id").tail(1)  # the same deliveries again
    assert scorer.observe(newest) == []
    assert {c: s.n_events for c, s in scorer.states.items()} == counts
    np.testing.assert_array_equal(scorer.score(view.frame["customer_id"]), scores)
    with pytest.raises(ValueError, match="older than its cached newest event"):  # an older replay is refused
        scorer.observe(events.groupby("customer_id").head(1))


def test_an_unknown_customer_is_refused(streaming):
    model, view = streaming
    scorer = StreamingScorer(model, customers=view.frame.iloc[:2])
    with pytest.raises(ValueError, match=r"no feature row for.*set_customers"):
        scorer.observe(view.sequences.events)
    assert not scorer.states


def test_the_cache_is_bounded_and_evicts_copies(streaming):
    model, view = streaming
    scorer = StreamingScorer(model, customers=view.frame, max_customers=3)
    scorer.observe(view.sequences.events)
    assert len(scorer.states) <= 3 and len(scorer.static) <= 3
    for state in scorer.states.values():  # each memory is its own storage, not a view of a batch tensor
        assert state.mems.untyped_storage().nbytes() == state.mems.numel() * state.mems.element_size()
    evicted = [c for c in view.frame["customer_id"] if c not in scorer.static]
    with pytest.raises(ValueError, match="no feature row"):
        scorer.score(evicted[:1])
    assert StreamingScorer(model, customers=view.frame).max_customers == 100_000  # bounded by default


def test_streaming_encodes_events_like_the_event_encoder(purchase_dm):
    """The scorer's memoised categorical codes equal EventEncoder.encode's for every form the columns take."""
    model = make_model(purchase_dm)
    scorer = StreamingScorer(model, customers=purchase_dm.view.frame.iloc[:3])
    encoder = model.preprocessor.events
    events = purchase_dm.view.sequences.events.iloc[:400].reset_index(drop=True)
    assert isinstance(events["category"].dtype, pd.CategoricalDtype)
    strings = events.astype({"event_type": object, "category": object})
    odd = strings.head(6).copy()
    odd.loc[0, "category"], odd.loc[1, "event_type"], odd.loc[2, "category"] = None, " Unknown ", "never seen"
    mixed = strings.head(3).copy()
    mixed["category"] = [1, 1.0, "x"]  # the encoder groups 1 and 1.0: no per-value memo for such a column
    flipped = events.head(5).copy()  # an equal (unordered) dtype whose categories are in another order
    flipped["category"] = flipped["category"].cat.reorder_categories(events["category"].cat.categories[::-1])
    assert flipped["category"].dtype == events["category"].dtype
    cases = [events.head(1), events.head(7), flipped, events.head(7), strings.head(1), strings.head(9),
             strings.head(9), strings, events, odd, mixed, events.drop(columns="category")]
    rng = np.random.default_rng(0)
    for i, frame in enumerate(cases):
        previous = np.where(rng.random(len(frame)) < 0.3, np.nan, rng.random(len(frame)))
        first = rng.random(len(frame)) < 0.5
        got = scorer.encode_events(frame, previous, first)
        want = encoder.encode(frame, previous_ts=previous, first_of_customer=first)
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"case {i}")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"case {i}")
    codes = scorer.encode_events(odd, np.zeros(6), np.ones(6, bool))[0]  # missing, "unknown", unseen -> 0
    assert codes[0, 1] == codes[1, 0] == codes[2, 1] == 0 and (codes[3:] > 0).all()


def test_one_event_requests_equal_the_full_history(purchase_dm):
    """Request by request (one event each, its columns sometimes plain strings), the scores equal scoring the
    whole history at once."""
    dm = purchase_dm
    model = make_model(dm, seg_len=8, mem_len=48)
    lengths = dm.view.sequences.lengths()
    rows = np.flatnonzero((lengths > 12) & (lengths <= 48))[:3]
    view = dm.view.subset(rows)
    ev = view.sequences.events.sort_values("ts", kind="stable").reset_index(drop=True)
    scorer = StreamingScorer(model, customers=view.frame)
    for i in range(len(ev)):
        request = ev.iloc[[i]]
        if i % 3 == 0:
            request = request.astype({"event_type": object, "category": object})
        out = scorer.update(request)
        assert list(out.columns) == ["customer_id", "p"] and out["customer_id"].tolist() == [ev["customer_id"].iat[i]]
        assert out["customer_id"].dtype == np.int64 and out["p"].dtype == np.float32
    expected = model.predict_frame(view.frame, events=view.sequences.events, as_of=view.sequences.as_of)["p"]
    got = scorer.score(view.frame["customer_id"], as_of=view.sequences.as_of)
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-5, atol=1e-6)
    counts = {c: s.n_events for c, s in scorer.states.items()}
    assert counts == dict(zip(view.frame["customer_id"], view.sequences.lengths()))
    assert scorer.update(ev.iloc[[len(ev) - 1]]).empty  # a replayed one-event request changes nothing
    assert {c: s.n_events for c, s in scorer.states.items()} == counts


def test_relative_positions_are_reused_only_without_autograd(purchase_dm):
    model = make_model(purchase_dm)
    attn = model.layers[0].attn
    h, mem = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    mask = torch.ones(2, 8, dtype=torch.bool)
    with torch.no_grad():
        before = attn(h, mem, mask)
        assert attn.relative_positions(5, 3, h.device) is attn.relative_positions(5, 3, h.device)
        attn.r.weight.mul_(2.0)  # the weights change in place: the cached positions are stale
        after = attn(h, mem, mask)
    expected = attn(h, mem, mask)  # with autograd: computed afresh
    assert not torch.equal(before, after) and torch.equal(after, expected.detach())
    assert attn.relative_positions(5, 3, h.device) is not attn.relative_positions(5, 3, h.device)
    for _ in range(2):  # no graph is shared between training steps
        attn(h, mem, mask).sum().backward()
    assert attn.r.weight.grad is not None
