"""Loss functions written here because no maintained library has them in this form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepromo.data.errors import UserInputError

CORRECTIONS = ("pos_to_neg", "neg_to_pos")
STAGE2_LOSSES = ("bce", "focal_margin")


def check_stage2_loss(name: str) -> str:
    """The per-label loss of the SPLC stage, or a clear error naming the valid ones."""
    if name not in STAGE2_LOSSES:
        raise UserInputError(f"unknown SPLC loss '{name}': stage2_loss must be one of {list(STAGE2_LOSSES)}")
    return name


def focal_margin_terms(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
                       margin: float = 1.0) -> torch.Tensor:
    """Per-row loss [B] of Zhang et al. 2021 (the original SPLC): a positive pays the focal margin loss
    -(1 - p_m)^gamma log p_m with p_m = sigmoid(logit - margin), a negative the focal loss -p^gamma log(1 - p)."""
    t = targets.float()
    shifted = logits - margin
    pos = torch.sigmoid(-shifted).pow(gamma) * F.softplus(-shifted)  # (1 - p_m)^g * -log p_m
    neg = torch.sigmoid(logits).pow(gamma) * F.softplus(logits)  # p^g * -log(1 - p)
    return t * pos + (1.0 - t) * neg


def check_correction(direction: str) -> str:
    """The SPLC correction direction, or a ValueError naming the valid ones (the one check of it)."""
    if direction not in CORRECTIONS:
        raise UserInputError(f"unknown SPLC direction '{direction}': correction must be one of {list(CORRECTIONS)}")
    return direction


def splc_targets(targets: torch.Tensor, prob: torch.Tensor, tau: float = 0.5, direction: str = "pos_to_neg"):
    """Self-paced label correction of binary targets [B] given probabilities [B] (no gradient).

    "pos_to_neg" (two-stage paper eq. 4-5): a positive with p <= tau becomes a negative.
    "neg_to_pos" (Zhang et al. 2021, the original multi-label SPLC): a negative with p > tau becomes positive.
    """
    check_correction(direction)
    targets = targets.float()
    prob = prob.detach()
    if direction == "pos_to_neg":
        return torch.where((targets > 0.5) & (prob <= tau), torch.zeros_like(targets), targets)
    return torch.where((targets < 0.5) & (prob > tau), torch.ones_like(targets), targets)


def splc_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    tau: float = 0.5,
    correct: bool = True,
    direction: str = "pos_to_neg",
    reduction: str = "mean",
    decision_logits: torch.Tensor | None = None,
    loss: str = "bce",
    gamma: float = 2.0,
    margin: float = 1.0,
) -> torch.Tensor:
    """SPLC loss: BCE on the corrected targets, i.e. for a positive -log p if p > tau else -log(1-p).

    logits, targets: [B] (targets in {0, 1}). With ``correct`` off this is plain BCE.
    loss: "bce", or "focal_margin" (the original SPLC's focal margin / focal terms, ``gamma``, ``margin``).
    decision_logits: [B] logits that decide which labels are corrected (default: ``logits``), e.g.
    from a frozen snapshot of the network; the loss itself is always taken on ``logits``.
    reduction: "mean" | "sum" | "none" | "balanced" (mean of the positive-class and negative-class means).
    """
    if correct:
        decide = logits if decision_logits is None else decision_logits
        targets = splc_targets(targets, torch.sigmoid(decide), tau, direction)
    targets = targets.float()
    if check_stage2_loss(loss) == "bce":
        per_row = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    else:
        per_row = focal_margin_terms(logits, targets, gamma, margin)
    if reduction == "balanced":
        return balanced_mean(per_row, targets)
    if reduction == "mean":
        return per_row.mean()
    if reduction == "sum":
        return per_row.sum()
    if reduction == "none":
        return per_row
    raise UserInputError(f"splc_loss: reduction must be mean, sum, none or balanced, got {reduction!r}")


def balanced_mean(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B] giving both classes of ``targets`` [B] equal total weight (one class: plain mean)."""
    pos = targets > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return values.mean()
    return 0.5 * values[pos].sum() / n_pos + 0.5 * values[~pos].sum() / n_neg


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float = 0.75,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017), mean over rows: -a_t (1 - p_t)^gamma log p_t.

    logits, targets: ``[B]`` (targets in {0, 1}). ``alpha`` weights the *positives* and 1 - alpha the
    negatives, as in the go-to-market paper (alpha = 0.75 up-weights buyers). RetinaNet's default 0.25
    means the opposite emphasis; alpha < 0 turns the weighting off. gamma = 0 is alpha-weighted BCE.
    Written here because torchvision's sigmoid_focal_loss has no CPU build in this environment.
    """
    t = targets.float()
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")  # -log p_t, stable at any logit
    # 1 - p_t = sigmoid(-logit) for a positive, sigmoid(logit) for a negative: exact, no 1 - (1 - eps) rounding.
    # The floor keeps d/dx x^gamma finite when gamma < 1 and the model is certain and right.
    one_minus_pt = torch.sigmoid(-logits * (2.0 * t - 1.0)).clamp_min(1e-12)
    loss = one_minus_pt.pow(gamma) * ce if gamma else ce
    if alpha >= 0:
        loss = (alpha * t + (1.0 - alpha) * (1.0 - t)) * loss
    if weight is not None:
        loss = loss * weight
    return loss.mean()
