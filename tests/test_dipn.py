"""dipn: monotone by construction, smoothness penalty, gradients, IPW, and the response evaluator."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from deepromo.data.datamodule import PromoDataModule
from deepromo.data.spec import CategoricalFeature, FeatureSpec, NumericFeature, TreatmentSpec
from deepromo.data.views import build_view
from deepromo.tasks.response import response_metrics
from deepromo.models.dipn import IsotonicResponseNet, thermometer

SPEC = FeatureSpec(
    categorical=(CategoricalFeature("region", 5, 3),),
    numeric=tuple(NumericFeature(f"x{i}") for i in range(4)),
    treatment=TreatmentSpec("incentive", levels=(0.0, 5.0, 10.0, 20.0)),
)


def random_batch(n=256, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {"cat": torch.randint(0, 5, (n, 1), generator=g), "num": torch.randn(n, 4, generator=g) * scale}


@pytest.mark.parametrize("seed", range(5))
def test_monotone_for_random_inputs_and_extreme_weights(seed):
    torch.manual_seed(seed)
    model = IsotonicResponseNet(SPEC, hidden=[16]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.empty_like(p).uniform_(-50, 50))  # extreme weights
    batch = random_batch(seed=seed, scale=100.0)
    c = torch.linspace(-5, 25, 61)  # also outside the knots
    with torch.no_grad():
        h = model.encoder(batch["cat"], batch["num"])
        logits = torch.stack([model.logits_at(h, torch.full((len(h),), float(v)))[0] for v in c], dim=1)
    assert torch.isfinite(logits).all()
    assert (torch.diff(logits, dim=1) >= -1e-4).all()  # non-decreasing in c for every row
    curve = model.predict_curve(batch)
    assert (np.diff(curve, axis=1) >= -1e-6).all()


def test_direction_minus_one_is_non_increasing():
    model = IsotonicResponseNet(SPEC, hidden=[8], direction=-1).eval()
    curve = model.predict_curve(random_batch())
    assert (np.diff(curve, axis=1) <= 1e-6).all()


def test_thermometer_by_hand():
    knots = torch.tensor([0.0, 5.0, 10.0, 20.0])
    e = thermometer(torch.tensor([-1.0, 2.5, 10.0, 15.0, 30.0]), knots)
    expected = [[0, 0, 0], [0.5, 0, 0], [1, 1, 0], [1, 1, 0.5], [1, 1, 1]]
    np.testing.assert_allclose(e.numpy(), expected)


def test_smoothness_penalty_zero_for_linear_curves():
    model = IsotonicResponseNet(SPEC, hidden=[8])
    # increments proportional to knot spacing -> constant slope on the logit scale
    w = torch.tensor([[5.0, 5.0, 10.0], [0.5, 0.5, 1.0]])
    assert model.smoothness_penalty(w).item() == pytest.approx(0.0, abs=1e-10)
    assert model.smoothness_penalty(torch.tensor([[1.0, 0.0, 3.0]])).item() > 0


def test_gradients_flow_to_every_parameter():
    model = IsotonicResponseNet(SPEC, hidden=[8, 8], smoothness=0.1)
    batch = {**random_batch(64), "treatment": torch.full((64,), 10.0), "y": (torch.rand(64) > 0.5).float()}
    loss = model.compute_loss(batch, model(batch))["loss"]
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_response_metrics_by_hand():
    curve = np.array([[0.1, 0.2, 0.15], [0.3, 0.3, 0.4]])
    truth = np.array([[0.1, 0.2, 0.3], [0.3, 0.3, 0.4]])
    y = np.array([0, 1])
    m = response_metrics(curve, np.array([0.2, 0.6]), y, np.array([0.0, 5.0]), (0.0, 5.0, 10.0), truth)
    assert m["monotonicity_violations"] == 0.5
    assert m["curve_rmse"] == pytest.approx(np.sqrt(0.15**2 / 6))
    assert m["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert m["roughness"] == pytest.approx(((0.15 - 0.4 + 0.1) ** 2 + (0.4 - 0.6 + 0.3) ** 2) / 2)


def test_ipw_recovers_effect_under_biased_logging():
    """A biased policy gives the incentive mostly to high-propensity buyers; weighting by 1/propensity
    should estimate the population effect of the incentive better than no weighting."""
    rng = np.random.default_rng(0)
    n = 6000
    x = rng.normal(size=n).astype(np.float32)
    p_treat = 1 / (1 + np.exp(-2.5 * x))  # engaged customers (high x) are treated more often
    treated = rng.random(n) < p_treat
    base = 1 / (1 + np.exp(-(x - 1.0)))
    p_buy = np.where(treated, np.clip(base + 0.10, 0, 1), base)  # true effect: +0.10 for everyone
    y = (rng.random(n) < p_buy).astype(np.float32)
    propensity = np.where(treated, p_treat, 1 - p_treat).astype(np.float32)
    spec = FeatureSpec(numeric=(NumericFeature("x"),), treatment=TreatmentSpec("incentive", levels=(0.0, 1.0)))
    tensors = {"cat": torch.zeros(n, 0, dtype=torch.long), "num": torch.from_numpy(x[:, None]),
               "treatment": torch.from_numpy(treated.astype(np.float32)), "y": torch.from_numpy(y),
               "propensity": torch.from_numpy(propensity)}
    # features hidden from the model: it sees only the treatment, as a naive comparison would
    tensors["num"] = torch.zeros(n, 1)
    effects = {}
    for ipw in (False, True):
        pl.seed_everything(0, verbose=False)
        model = IsotonicResponseNet(spec, hidden=[4], ipw=ipw, smoothness=0.0, lr=0.05)
        opt = model.configure_optimizers()
        for _ in range(300):
            loss = model.compute_loss(tensors, model(tensors))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        curve = model.predict_curve(tensors)
        effects[ipw] = float(np.mean(curve[:, 1] - curve[:, 0]))
    true_effect = float(np.mean(np.clip(base + 0.10, 0, 1) - base))
    assert abs(effects[True] - true_effect) < abs(effects[False] - true_effect) - 0.05
    assert abs(effects[True] - true_effect) < 0.05


def test_dipn_trains_and_beats_nothing_on_tiny_world(tiny_world):
    dm = PromoDataModule(build_view("response", tiny_world), batch_size=128, seed=0)
    dm.setup()
    model = IsotonicResponseNet.from_datamodule(dm, hidden=[16])
    assert model.levels == (0.0, 5.0, 10.0, 15.0, 20.0)
    rows = torch.as_tensor(dm.indices["val"])
    val = {k: v[rows] for k, v in dm.tensors.items()}
    before = model.compute_loss(val, model(val))["bce"].item()
    pl.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False).fit(model, datamodule=dm)
    model.eval()
    after = model.compute_loss(val, model(val))["bce"].item()
    assert after < before
