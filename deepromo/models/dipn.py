"""dipn: isotonic promotion-response network (DESIGN §5; Shen et al. 2021, seeds/000 ref [1]).

p(x, c) = sigmoid( b(x) + d * <w(x), e(c)> ),  w(x) = softplus(MLP(x)) in R^K, w >= 0,
e_k(c) = clip((c - t_{k-1}) / (t_k - t_{k-1}), 0, 1) on knots t_0 < ... < t_K ("thermometer"),
d = the treatment's monotone direction (+1: non-decreasing). Each e_k is non-decreasing in c and
each w_k is non-negative, so p is monotone in c for every x *by construction*, not by a penalty.
Smoothness: the curve's slopes between knots s_k = w_k / (t_k - t_{k-1}) are penalised by the squared
differences of neighbouring slopes (zero for a curve that is linear in c on the logit scale).
With ``monotone: false`` the same trunk instead takes c as an input (the unconstrained baseline).
Unordered arms (``spec.treatment.arms``, e.g. Mens / Womens / No e-mail) are labels, not amounts, so there
is no order to be monotone in: each arm k > 0 gets its own unconstrained increment, logit = b(x) + δ_k(x)
(δ_0 = 0), and the unconstrained baseline reads the arm one-hot instead of a scaled c.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAUROC

from deepromo.models.base import HyperParameterError, PromoModel
from deepromo.models.layers import FeatureEncoder, mlp
from deepromo.models.layers.response import ResponseCurveOutputs
from deepromo.models.registry import register_model


def thermometer(c: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """``c [B]`` on knots ``[K+1]`` -> ``[B, K]`` with e_k = clip((c - t_{k-1}) / (t_k - t_{k-1}), 0, 1)."""
    low, high = knots[:-1], knots[1:]
    return ((c.unsqueeze(-1) - low) / (high - low)).clamp(0.0, 1.0)


@register_model("dipn")
class IsotonicResponseNet(ResponseCurveOutputs, PromoModel):
    task = "response"
    required_keys = ("cat", "num", "treatment", "y")
    defaults = {
        "hidden": [64, 32],  # trunk hidden layers
        "dropout": 0.1,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "knots": None,  # incentive knots t_0 < ... < t_K; None = the spec's levels (quantiles when continuous)
        "smoothness": 0.01,  # weight of the slope-difference penalty
        "ipw": False,  # weight rows by 1 / propensity (for logs from a biased policy)
        "monotone": True,  # False = the unconstrained MLP baseline (c is an input feature)
        "direction": 1,  # +1: response non-decreasing in the incentive; -1: non-increasing
    }
    test_params = [{"hidden": [8]}, {"hidden": [8], "monotone": False}]
    output_columns = ("p", "curve")  # curve [N, K+1]: the purchase probability at every knot
    monitor = ("val/loss", "min")

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        hp = self.hparams
        self.unordered = self.spec.treatment is not None and not self.spec.treatment.ordered
        if self.unordered and hp.knots is not None:
            raise HyperParameterError(f"dipn: knots apply to ordered incentive amounts; the treatment's arms "
                                      f"{list(self.spec.treatment.arms)} are unordered, so set knots: null")
        knots = hp.knots if hp.knots is not None else self.default_knots()
        knots = torch.tensor([float(k) for k in knots], dtype=torch.float32)
        if knots.numel() < 2 or not bool((knots[1:] > knots[:-1]).all()):
            raise HyperParameterError(f"dipn: knots must be at least two strictly increasing values, got {hp.knots}")
        if hp.direction not in (1, -1):
            raise HyperParameterError(f"dipn: direction must be 1 or -1, got {hp.direction}")
        self.register_buffer("knots", knots)
        self.levels = tuple(float(k) for k in knots.tolist())
        self.encoder = FeatureEncoder(self.spec)
        k = len(self.levels) - 1
        extra = 0 if hp.monotone else (len(self.levels) if self.unordered else 1)
        self.trunk = mlp(self.encoder.out_dim + extra, list(hp.hidden)[:-1], list(hp.hidden)[-1], hp.dropout)
        self.head = nn.Linear(list(hp.hidden)[-1], 1 + (k if hp.monotone else 0))
        self.metrics = nn.ModuleDict({f"{s}_auc": BinaryAUROC() for s in ("val", "test")})

    def default_knots(self) -> list[float]:
        t = self.spec.treatment
        if t is None:
            raise HyperParameterError("dipn needs a treatment in the spec (a response view with an incentive column)")
        return list(t.levels) if t.levels else list(np.linspace(t.low, t.high, 5))

    @classmethod
    def hparams_from_data(cls, datamodule) -> dict:
        """Knots of a continuous treatment: 6 quantiles of the training incentives (discrete levels come from
        the spec, which has them from the source)."""
        treatment = datamodule.spec.treatment
        if treatment is None or treatment.levels:
            return {}
        incentives = datamodule.tensors["treatment"][datamodule.indices["train"]].numpy()
        return {"knots": [float(v) for v in np.unique(np.quantile(incentives, np.linspace(0, 1, 6)))]}

    def _features(self, batch) -> torch.Tensor:
        return self.encoder(batch["cat"], batch["num"])

    def _scale(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.knots[0]) / (self.knots[-1] - self.knots[0])

    def level_index(self, c: torch.Tensor) -> torch.Tensor:
        """[B] index of each incentive's level (the nearest knot at or above it)."""
        return torch.searchsorted(self.knots, c.to(self.knots.dtype).contiguous()).clamp(0, self.knots.numel() - 1)

    def arm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Unordered arms: ``[B, L]`` logits b(x) + δ_k(x) with δ_0 = 0 (no order, so no constraint)."""
        out = self.head(self.trunk(h))
        return out[:, :1] + F.pad(out[:, 1:], (1, 0))

    def logits_at(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logit at incentives ``c [B]`` from trunk input features ``h``; returns (logit [B], increments or None)."""
        if self.hparams.monotone and self.unordered:
            return self.arm_logits(h).gather(1, self.level_index(c).unsqueeze(-1)).squeeze(-1), None
        if self.unordered:
            arm = F.one_hot(self.level_index(c), self.knots.numel()).to(h.dtype)
            return self.head(self.trunk(torch.cat([h, arm], dim=-1))).squeeze(-1), None
        if self.hparams.monotone:
            out = self.head(self.trunk(h))
            base, w = out[:, 0], F.softplus(out[:, 1:])
            return base + self.hparams.direction * (w * thermometer(c, self.knots)).sum(-1), w
        z = self.head(self.trunk(torch.cat([h, self._scale(c).unsqueeze(-1)], dim=-1)))
        return z.squeeze(-1), None

    def curve_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits at every knot: ``[B, K+1]``."""
        if self.hparams.monotone and self.unordered:
            return self.arm_logits(h)
        if self.hparams.monotone:
            out = self.head(self.trunk(h))
            base, w = out[:, :1], F.softplus(out[:, 1:])
            return torch.cat([base, base + self.hparams.direction * torch.cumsum(w, dim=-1)], dim=-1)
        n, levels = h.shape[0], self.knots.numel()
        c = self.knots.repeat(n)
        hh = h.repeat_interleave(levels, dim=0)
        return self.logits_at(hh, c)[0].view(n, levels)

    def forward(self, batch):
        h = self._features(batch)
        c = batch["treatment"] if "treatment" in batch else torch.zeros(len(h), device=h.device)
        logit, w = self.logits_at(h, c)
        curve = torch.sigmoid(self.curve_logits(h))
        return {"logit": logit, "p": torch.sigmoid(logit), "curve": curve, "increments": w}

    def smoothness_penalty(self, w: torch.Tensor) -> torch.Tensor:
        """Mean squared difference of neighbouring slopes w_k / (t_k - t_{k-1}); 0 for a logit-linear curve."""
        if w is None or w.shape[-1] < 2:
            return torch.zeros((), device=self.knots.device)
        span = self.knots[-1] - self.knots[0]
        slopes = w / (self.knots[1:] - self.knots[:-1]) * span
        return (slopes[:, 1:] - slopes[:, :-1]).pow(2).mean()

    def compute_loss(self, batch, out):
        bce = F.binary_cross_entropy_with_logits(out["logit"], batch["y"], reduction="none")
        if self.hparams.ipw:
            if "propensity" not in batch:
                raise KeyError("dipn: ipw=true needs batch['propensity']")
            weight = 1.0 / batch["propensity"]
            bce = bce * weight / weight.mean()
        loss = bce.mean()
        smooth = self.smoothness_penalty(out["increments"])
        return {"loss": loss + self.hparams.smoothness * smooth, "bce": loss, "smoothness": smooth}

    @torch.inference_mode()
    def predict_curve(self, tensors: dict[str, torch.Tensor], batch_size: int = 65536) -> np.ndarray:
        """Purchase probability at every knot for each row: ``[N, K+1]`` (rows of ``cat``/``num``)."""
        self.eval()
        n = len(tensors["cat"])
        parts = []
        for start in range(0, n, batch_size):
            h = self.encoder(tensors["cat"][start:start + batch_size].to(self.device),
                             tensors["num"][start:start + batch_size].to(self.device))
            parts.append(torch.sigmoid(self.curve_logits(h)).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, len(self.levels)), dtype=np.float32)
