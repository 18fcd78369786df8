"""dragonnet: TARNet plus a propensity head and targeted regularisation (Shi, Blei & Veitch 2019, NeurIPS).

The trunk Φ(x) and the per-level outcome heads Q(x, k) = sigmoid(head_k(Φ(x))) are tarnet's; a propensity head
g(x) = softmax(W Φ(x) + b) over the L levels (for two levels the paper's sigmoid head) is trained with
cross entropy against the logged level, so Φ keeps what predicts the treatment. Targeted regularisation, with
a learned ε_k per non-control level k and g clamped to [0.01, 0.99]:
    h_k(x, t) = 1[t = k] / g_k(x) − 1[t = 0] / g_0(x),   Q̃ = Q(x, t) + Σ_k ε_k h_k(x, t),   γ = (y − Q̃)²
(for L = 2 this is the paper's Q̃ = Q + ε (t / g − (1 − t) / (1 − g)); the per-arm covariates for L > 2 are this
library's generalisation). Loss = BCE(Q) + alpha · CE(g) + beta · mean γ. Curves are the unperturbed Q(x, k).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepromo.models.base import HyperParameterError
from deepromo.models.registry import register_model
from deepromo.models.tarnet import TARNet

PROPENSITY_CLAMP = (0.01, 0.99)  # the paper's bounds on g in the clever covariate


@register_model("dragonnet")
class DragonNet(TARNet):
    defaults = {
        **TARNet.defaults,
        "alpha": 1.0,  # weight of the propensity cross entropy (paper: 1.0)
        "beta": 1.0,  # weight of the targeted regularisation (paper: 1.0; 0 = none)
    }
    test_params = [{"hidden": [8], "head_hidden": 4}]

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        self.propensity_head = nn.Linear(list(self.hparams.hidden)[-1], len(self.levels))
        self.epsilon = nn.Parameter(torch.zeros(len(self.levels) - 1))  # ε_k of each non-control level

    def check_hparams(self) -> None:
        super().check_hparams()
        for key in ("alpha", "beta"):
            value = self.hparams[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise HyperParameterError(f"model '{self.name}': {key}={value!r}; expected a finite number >= 0 "
                                          "(the paper uses 1.0)")

    def forward(self, batch):
        out = super().forward(batch)
        out["propensity_logits"] = self.propensity_head(out["phi"])
        out["propensity"] = torch.softmax(out["propensity_logits"], dim=-1)  # [B, L]
        return out

    def clever_covariates(self, propensity: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """``[B, L-1]``: h_k = 1[t = k] / g_k − 1[t = 0] / g_0 for each non-control level k (g clamped)."""
        g = propensity.clamp(*PROPENSITY_CLAMP)
        onehot = F.one_hot(level, len(self.levels)).to(g.dtype)
        return onehot[:, 1:] / g[:, 1:] - onehot[:, :1] / g[:, :1]

    def targeted_regularisation(self, batch, out) -> torch.Tensor:
        """mean (y − Q̃)² with Q̃ = Q(x, t) + Σ_k ε_k h_k(x, t), on the probability scale as in the paper."""
        perturbed = out["p"] + self.clever_covariates(out["propensity"], out["level"]) @ self.epsilon
        return (batch["y"] - perturbed).pow(2).mean()

    def compute_loss(self, batch, out):
        outcome, log_loss = self.outcome_loss(batch, out)
        propensity_ce = F.cross_entropy(out["propensity_logits"], out["level"])
        treg = self.targeted_regularisation(batch, out)
        loss = outcome + self.hparams.alpha * propensity_ce + self.hparams.beta * treg
        return {"loss": loss, "log_loss": log_loss, "propensity_ce": propensity_ce, "targeted_reg": treg}

    @torch.inference_mode()
    def predict_propensity(self, tensors: dict[str, torch.Tensor], batch_size: int = 65536) -> np.ndarray:
        """ĝ(x): the predicted probability of each level for each row, ``[N, L]`` (rows of ``cat``/``num``)."""
        return self.predict_output(tensors, "propensity", batch_size)
