import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from deepromo.data.datamodule import PromoDataModule
from deepromo.data.views import build_view
from deepromo.models.losses import splc_loss
from deepromo.models.splc import TwoStageSPLC


def test_splc_without_correction_is_bce():
    logits = torch.tensor([-2.0, -0.1, 0.3, 2.0])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    expected = F.binary_cross_entropy_with_logits(logits, y)
    assert splc_loss(logits, y, correct=False).item() == pytest.approx(expected.item())


def test_splc_positive_to_negative_by_hand():
    p = torch.tensor([0.2, 0.7, 0.6, 0.1])
    logits = torch.log(p / (1 - p))
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # tau = 0.5: first positive (p=0.2 <= tau) is corrected to negative -> -log(0.8)
    hand = [-math.log(0.8), -math.log(0.7), -math.log(0.4), -math.log(0.9)]
    got = splc_loss(logits, y, tau=0.5, reduction="none")
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-5)


def test_splc_negative_to_positive_by_hand():
    p = torch.tensor([0.2, 0.7, 0.6, 0.1])
    logits = torch.log(p / (1 - p))
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # original SPLC: the negative with p=0.6 > tau becomes a positive -> -log(0.6)
    hand = [-math.log(0.2), -math.log(0.7), -math.log(0.6), -math.log(0.9)]
    got = splc_loss(logits, y, tau=0.5, direction="neg_to_pos", reduction="none")
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown SPLC direction 'sideways'"):
        splc_loss(logits, y, direction="sideways")


def test_splc_gradient_of_corrected_positive_pushes_down():
    logit = torch.tensor([-1.0], requires_grad=True)  # p = 0.27 <= tau
    splc_loss(logit, torch.tensor([1.0]), tau=0.5).backward()
    assert logit.grad.item() > 0  # gradient descent lowers the logit, as for a negative


class EpochProbe(pl.Callback):
    def __init__(self):
        self.active, self.losses = [], []

    # the module logs its epoch means after the callbacks' on_train_epoch_end, so read them one hook later
    def on_train_epoch_start(self, trainer, module):
        self.active.append(module.correction_active())
        self.record(trainer)

    def on_fit_end(self, trainer, module):
        self.record(trainer)

    def record(self, trainer):
        if "train/stage1_loss" in trainer.callback_metrics:
            self.losses.append(float(trainer.callback_metrics["train/stage1_loss"]))


@pytest.fixture(scope="module")
def customer_dm(tiny_world):
    dm = PromoDataModule(build_view("customer", tiny_world), batch_size=64, seed=0)
    dm.setup()
    return dm


def fit(dm, epochs, **params):
    pl.seed_everything(0, verbose=False)
    model = TwoStageSPLC.from_datamodule(dm, **{"class_weights": dm.class_weights(), "hidden": 16, "stage2_hidden": 16,
                                                **params})
    probe = EpochProbe()
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, callbacks=[probe])
    trainer.fit(model, datamodule=dm)
    return model, probe


def test_correction_starts_after_warmup_and_loss_goes_down(customer_dm):
    model, probe = fit(customer_dm, epochs=4, warmup_epochs=2)
    assert probe.active == [False, False, True, True]
    assert len(probe.losses) == 4
    assert probe.losses[-1] < probe.losses[0]
    _, probe_off = fit(customer_dm, epochs=2, label_correction=False)
    assert probe_off.active == [False, False]


def test_score_is_product_of_stages(customer_dm):
    model, _ = fit(customer_dm, epochs=1)
    out = model.predict_arrays({k: v[:50] for k, v in customer_dm.tensors.items()})
    np.testing.assert_allclose(out["score"], out["p_active"] * out["p_prompted"], rtol=1e-6)
    np.testing.assert_allclose(out["p_inactive"] + out["p_unengaged"] + out["p_engaged"], 1.0, rtol=1e-5)
    expected_pred = (out["p_active"] > 0.5) & (out["p_prompted"] > 0.5)
    np.testing.assert_array_equal(out["pred_prompted"].astype(bool), expected_pred)


def test_class_weights_are_inverse_frequency(customer_dm):
    y = customer_dm.tensors["y_class"][customer_dm.indices["train"]]
    counts = torch.bincount(y, minlength=3).double()
    w = customer_dm.class_weights()
    expected = counts.sum() / (3 * counts)
    np.testing.assert_allclose(w, expected.numpy(), rtol=1e-6)


def test_bad_hyperparameters(customer_dm):
    with pytest.raises(ValueError, match="tau must lie in"):
        TwoStageSPLC(customer_dm.spec, tau=1.5)
    with pytest.raises(ValueError, match="correction must be"):
        TwoStageSPLC(customer_dm.spec, correction="both")


def test_correction_flips_mostly_organic_positives():
    """On a world where half of the engaged buyers are organic, the positives that SPLC treats as
    negatives must be organic far more often than the positives it keeps."""
    from deepromo.data.sources.synthetic import generate_world

    world = generate_world(n_customers=4000, seed=5)
    dm = PromoDataModule(build_view("customer", world), batch_size=256, seed=0)
    dm.setup()
    model, probe = fit(dm, epochs=8, warmup_epochs=3)
    assert probe.active[-1]
    rows = dm.indices["train"]
    positives = rows[dm.tensors["y_class"][rows].numpy() == 2]
    out = model.predict_arrays({k: v[torch.as_tensor(positives)] for k, v in dm.tensors.items()})
    corrected = out["p_prompted"] <= model.hparams.tau
    organic = dm.view.truth["intent"].to_numpy()[positives] == "organic"
    assert 0.1 < corrected.mean() < 0.9  # some, not all: no collapse to the trivial solution
    assert organic[corrected].mean() > organic[~corrected].mean() + 0.25


def test_focal_margin_terms_match_the_hand_computed_values():
    """Zhang et al. 2021: positive -(1 - s(x - m))^g log s(x - m), negative -s(x)^g log(1 - s(x))."""
    import math

    from deepromo.models.losses import focal_margin_terms

    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    x, m, g = 0.3, 1.0, 2.0
    got = focal_margin_terms(torch.tensor([x, x]), torch.tensor([1.0, 0.0]), gamma=g, margin=m)
    pos = -((1 - sig(x - m)) ** g) * math.log(sig(x - m))
    neg = -(sig(x) ** g) * math.log(1 - sig(x))
    assert got.tolist() == pytest.approx([pos, neg], rel=1e-5)
    # with correction neg->pos, a confident negative pays the positive term
    corrected = splc_loss(torch.tensor([2.0]), torch.tensor([0.0]), tau=0.6, direction="neg_to_pos",
                          loss="focal_margin", reduction="none")
    assert corrected.item() == pytest.approx(-((1 - sig(1.0)) ** 2) * math.log(sig(1.0)), rel=1e-5)
    with pytest.raises(Exception, match="stage2_loss must be one of"):
        splc_loss(torch.tensor([0.0]), torch.tensor([1.0]), loss="hinge")
