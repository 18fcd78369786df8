"""Loss functions written here because no maintained library has them in this form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CORRECTIONS = ("pos_to_neg", "neg_to_pos")


def splc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    tau: float = 0.5,
    correct: bool = True,
    direction: str = "pos_to_neg",
    reduction: str = "mean",
) -> torch.Tensor:
    """Self-paced loss correction (two-stage paper eq. 4-5; Zhang et al. 2021 for the other direction).

    logits, targets: [B] (targets in {0, 1}). With ``correct`` on and direction "pos_to_neg", a
    positive whose p = sigmoid(logit) <= tau is treated as a negative (loss -log(1-p)); negatives
    always use -log(1-p). Direction "neg_to_pos" (the original multi-label SPLC) instead treats a
    negative with p > tau as a positive. With ``correct`` off this is plain BCE.
    """
    if direction not in CORRECTIONS:
        raise ValueError(f"unknown SPLC direction '{direction}'; expected one of {CORRECTIONS}")
    targets = targets.float()
    if correct:
        p = torch.sigmoid(logits.detach())
        if direction == "pos_to_neg":
            targets = torch.where((targets > 0.5) & (p <= tau), torch.zeros_like(targets), targets)
        else:
            targets = torch.where((targets < 0.5) & (p > tau), torch.ones_like(targets), targets)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
