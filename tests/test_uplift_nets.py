"""tarnet and dragonnet: they rank customers by a known uplift, dragonnet's propensity head learns a biased
assignment, each outcome head learns only from its own level's rows, and a missing or continuous treatment is
refused naming the model."""

import re

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score

from deepromo.data.spec import FeatureSpec, NumericFeature, TreatmentSpec
from deepromo.models.base import HyperParameterError
from deepromo.models.dragonnet import DragonNet
from deepromo.models.tarnet import TARNet

N_FEATURES = 4  # x0 drives the uplift and the assignment, the others are noise


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are small: one thread is as fast, and does not slow down many-fold when other processes
    share the cores (a busy machine made two OpenMP threads spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec(levels=(0.0, 1.0), **treatment):
    return FeatureSpec(numeric=tuple(NumericFeature(f"x{i}") for i in range(N_FEATURES)),
                       treatment=TreatmentSpec("incentive", levels=levels, **treatment))


def uplift_problem(n=4000, seed=0, p_treat_pos=0.5, p_treat_neg=0.5):
    """Tensors of a binary treatment that raises the purchase rate (0.15 -> 0.55) only for customers with
    x0 > 0; treated with probability ``p_treat_pos`` if x0 > 0 else ``p_treat_neg``. Returns (tensors, the
    high-uplift indicator, the true propensity of treatment)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    high = x[:, 0] > 0
    e = np.where(high, p_treat_pos, p_treat_neg)
    t = (rng.random(n) < e).astype(np.float32)
    p_buy = 0.15 + 0.4 * t * high
    y = (rng.random(n) < p_buy).astype(np.float32)
    propensity = np.where(t == 1, e, 1 - e).astype(np.float32)
    tensors = {"cat": torch.zeros(n, 0, dtype=torch.long), "num": torch.from_numpy(x),
               "treatment": torch.from_numpy(t), "y": torch.from_numpy(y),
               "propensity": torch.from_numpy(propensity)}
    return tensors, high, e


def fit(model, tensors, steps=150):
    """Full-batch AdamW steps on ``compute_loss`` (the loss Lightning's loop would minimise)."""
    model.train()
    opt = model.configure_optimizers()
    for _ in range(steps):
        loss = model.compute_loss(tensors, model(tensors))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("cls", [TARNet, DragonNet])
def test_ranks_the_customers_the_treatment_helps_first(cls):
    pl.seed_everything(0, verbose=False)
    tensors, high, _ = uplift_problem()
    model = fit(cls(spec(), hidden=[32], head_hidden=16, dropout=0.0, lr=0.01), tensors)
    curve = model.predict_curve(tensors)
    assert curve.shape == (len(high), 2) and np.isfinite(curve).all()
    uplift = curve[:, 1] - curve[:, 0]
    assert roc_auc_score(high, uplift) > 0.75
    assert uplift[high].mean() > 0.2 and abs(uplift[~high].mean()) < 0.1  # true uplift: 0.4 and 0


def test_dragonnet_propensity_head_learns_a_biased_assignment():
    pl.seed_everything(0, verbose=False)
    tensors, _, e = uplift_problem(p_treat_pos=0.8, p_treat_neg=0.2)
    model = fit(DragonNet(spec(), hidden=[32], head_hidden=16, dropout=0.0, lr=0.01), tensors)
    g = model.predict_propensity(tensors)
    assert g.shape == (len(e), 2) and np.allclose(g.sum(axis=1), 1.0, atol=1e-5)
    assert np.corrcoef(g[:, 1], e)[0, 1] > 0.5
    assert abs(g[:, 1].mean() - tensors["treatment"].mean().item()) < 0.05
    out = model(tensors)
    assert set(model.compute_loss(tensors, out)) == {"loss", "log_loss", "propensity_ce", "targeted_reg"}


@pytest.mark.parametrize("cls", [TARNet, DragonNet])
def test_three_levels_each_head_learns_only_from_its_own_rows(cls):
    torch.manual_seed(0)
    model = cls(spec(levels=(0.0, 5.0, 10.0)), hidden=[8], head_hidden=4, dropout=0.0)
    n = 64
    batch = {"cat": torch.zeros(n, 0, dtype=torch.long), "num": torch.randn(n, N_FEATURES),
             "treatment": torch.tensor([0.0, 10.0]).repeat(n // 2),  # no row at level 5
             "y": (torch.rand(n) > 0.5).float()}
    out = model(batch)
    assert out["curve"].shape == (n, 3) and out["logits"].shape == (n, 3)
    model.compute_loss(batch, out)["loss"].backward()
    for k, head in enumerate(model.heads):
        grads = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                           for p in head.parameters()])
        assert (grads.abs().sum() == 0) == (k == 1), k  # only the level without rows gets no gradient
    # a value between levels maps to the nearest level at or above it, like the task's at_logged_level
    index = model.level_index(torch.tensor([-1.0, 0.0, 3.0, 5.0, 7.5, 10.0, 12.0]))
    assert index.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert model.frame_columns() == ["p", "p_at_0", "p_at_5", "p_at_10"]


def test_unordered_arms_are_levels_too():
    arms = spec(levels=(0.0, 1.0, 2.0), arms=("No E-Mail", "Mens E-Mail", "Womens E-Mail"))
    model = DragonNet(arms, hidden=[8], head_hidden=0)
    batch = {"cat": torch.zeros(6, 0, dtype=torch.long), "num": torch.randn(6, N_FEATURES),
             "treatment": torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])}
    out = model(batch)
    assert out["curve"].shape == (6, 3) and out["propensity"].shape == (6, 3)
    torch.testing.assert_close(out["p"], out["curve"][torch.arange(6), out["level"]])


def test_ipw_weights_have_mean_one():
    tensors, _, _ = uplift_problem(n=200)
    weighted, plain = (TARNet(spec(), hidden=[8], ipw=ipw) for ipw in (True, False))
    plain.load_state_dict(weighted.state_dict())
    uniform = {**tensors, "propensity": torch.full((200,), 0.5)}
    torch.testing.assert_close(weighted.compute_loss(uniform, weighted.eval()(uniform))["loss"],
                               plain.compute_loss(uniform, plain.eval()(uniform))["loss"])
    assert weighted.row_weights(tensors).mean().item() == pytest.approx(1.0)
    with pytest.raises(HyperParameterError, match="tarnet.*propensity"):
        weighted.compute_loss({k: v for k, v in tensors.items() if k != "propensity"}, weighted(tensors))


@pytest.mark.parametrize("cls", [TARNet, DragonNet])
def test_missing_or_continuous_treatment_is_refused_naming_the_model(cls):
    no_treatment = FeatureSpec(numeric=(NumericFeature("x0"),))
    with pytest.raises(HyperParameterError, match=rf"model '{cls.name}' needs a treatment"):
        cls(no_treatment)
    continuous = spec(levels=None, low=0.0, high=20.0)
    with pytest.raises(HyperParameterError, match=rf"model '{cls.name}'.*continuous.*expected discrete levels"):
        cls(continuous)
    with pytest.raises(HyperParameterError, match=rf"model '{cls.name}'.*single level"):
        cls(spec(levels=(0.0,)))


@pytest.mark.parametrize("cls, key, value", [(TARNet, "hidden", []), (TARNet, "head_hidden", -1),
                                             (TARNet, "dropout", 1.0), (DragonNet, "alpha", -1.0),
                                             (DragonNet, "beta", "big")])
def test_bad_hyper_parameters_name_model_key_and_value(cls, key, value):
    with pytest.raises(HyperParameterError, match=re.escape(f"model '{cls.name}': {key}={value!r}; expected")):
        cls(spec(), **{key: value})
