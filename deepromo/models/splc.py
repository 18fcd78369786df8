"""splc: two-stage multiclass-then-SPLC label-correction classifier (seeds/001, DESIGN §5).

Stage 1: single-hidden-layer network, softmax over the behaviour segments
(inactive / unengaged purchase / engaged purchase), class-weighted cross entropy.
Stage 2: single-hidden-layer binary network on purchasers: engaged (initial label 1) vs
unengaged (0), trained with the SPLC loss after ``warmup_epochs`` epochs of plain BCE.
Which positives count as corrected is decided by a frozen snapshot of the stage-2 network taken
at the start of each epoch (see ``on_train_epoch_start``).
Targeting score = P(not inactive) x P(prompted). Both stages train in one ``fit``: they are
independent networks, so one optimizer over both is the same as training them side by side.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAUROC, MulticlassRecall

from deepromo.models.base import HyperParameterError, PromoModel
from deepromo.models.layers import FeatureEncoder, mlp
from deepromo.models.losses import check_correction, check_stage2_loss, splc_loss
from deepromo.models.registry import register_model

INACTIVE, UNENGAGED, ENGAGED = 0, 1, 2


@register_model("splc")
class TwoStageSPLC(PromoModel):
    task = "targeting"
    required_keys = ("cat", "num", "y_class")
    defaults = {
        "hidden": 64,  # stage-1 hidden units
        "stage2_hidden": 64,  # stage-2 hidden units
        "dropout": 0.1,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "tau": 0.4,  # SPLC threshold: positives with p <= tau count as negatives
        "warmup_epochs": 5,  # epochs of plain BCE before correction starts
        "correction": "pos_to_neg",  # or "neg_to_pos" (original multi-label SPLC)
        "stage2_loss": "bce",  # or "focal_margin" (original SPLC: focal margin on positives, focal on negatives)
        "focal_gamma": 2.0,  # focal_margin only: focusing exponent
        "focal_margin": 1.0,  # focal_margin only: logit margin of the positives' term
        "label_correction": True,  # False = the bce_two_stage baseline
        "class_weights": None,  # stage-1 CE weights per segment; None = uniform
        "stage2_balanced": True,  # stage-2 loss gives (corrected) positives and negatives equal weight
        "decision_threshold": 0.5,  # stage-2 probability above which a customer is called prompted
    }
    test_params = [{"hidden": 8, "stage2_hidden": 8},
                   {"hidden": 8, "stage2_hidden": 8, "label_correction": False},
                   {"hidden": 8, "stage2_hidden": 8, "correction": "neg_to_pos", "warmup_epochs": 0,
                    "stage2_loss": "focal_margin"}]
    # stage 2's validation AUC, shifted below every corrected epoch's during the warm-up (see on_validation_epoch_end)
    monitor = ("val/selection_auc", "max")
    output_columns = ("p_inactive", "p_unengaged", "p_engaged", "p_active", "p_prompted", "score", "pred_prompted")

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        hp = self.hparams
        check_correction(hp.correction)
        check_stage2_loss(hp.stage2_loss)
        if not 0.0 < hp.tau < 1.0:
            raise HyperParameterError(f"splc: tau must lie in (0, 1), got {hp.tau}")
        self.encoder1 = FeatureEncoder(self.spec)
        self.stage1 = mlp(self.encoder1.out_dim, [hp.hidden], 3, hp.dropout)
        self.encoder2 = FeatureEncoder(self.spec)
        self.stage2 = mlp(self.encoder2.out_dim, [hp.stage2_hidden], 1, hp.dropout)
        weights = torch.tensor(hp.class_weights if hp.class_weights is not None else [1.0, 1.0, 1.0])
        if weights.shape != (3,) or (weights <= 0).any():
            raise HyperParameterError(f"splc: class_weights must be 3 positive numbers, got {hp.class_weights}")
        self.register_buffer("class_weight", weights.float())
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("val", "test")
                for name, metric in (("stage1_bacc", MulticlassRecall(3, average="macro")), ("stage2_auc", BinaryAUROC()))
            }
        )
        self.selection_auc = BinaryAUROC()

    @classmethod
    def hparams_from_data(cls, datamodule) -> dict:
        return {"class_weights": datamodule.class_weights("y_class")}

    def forward(self, batch):
        logits1 = self.stage1(self.encoder1(batch["cat"], batch["num"]))
        logit2 = self.stage2(self.encoder2(batch["cat"], batch["num"])).squeeze(-1)
        probs = torch.softmax(logits1, dim=-1)
        p_active = 1.0 - probs[:, INACTIVE]
        p_prompted = torch.sigmoid(logit2)
        return {
            "stage1_logits": logits1,
            "stage2_logit": logit2,
            "p_inactive": probs[:, INACTIVE],
            "p_unengaged": probs[:, UNENGAGED],
            "p_engaged": probs[:, ENGAGED],
            "p_active": p_active,
            "p_prompted": p_prompted,
            "score": p_active * p_prompted,
            "pred_prompted": ((p_active > 0.5) & (p_prompted > self.hparams.decision_threshold)).float(),
        }

    def correction_active(self) -> bool:
        return bool(self.hparams.label_correction) and self.current_epoch >= self.hparams.warmup_epochs

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        # The SPLC loss has a trivial global minimum: predict p ~ 0 everywhere and every positive
        # counts as corrected, at zero loss. If the live network decided the corrections, each
        # flipped positive would lower its neighbours' p within the same epoch and the flips cascade
        # to that minimum (seen on the synthetic world within one epoch). So the corrections of an
        # epoch come from a frozen copy of stage 2 taken at its start: labels are fixed per epoch.
        # Kept outside the module tree so it is not trained, saved or moved by Lightning.
        if self.correction_active():
            teacher = (copy.deepcopy(self.encoder2).eval(), copy.deepcopy(self.stage2).eval())
            for module in teacher:
                module.requires_grad_(False)
            self.__dict__["_teacher"] = teacher

    def teacher_logit(self, batch) -> torch.Tensor:
        encoder, head = self.__dict__["_teacher"]
        with torch.no_grad():
            return head(encoder(batch["cat"], batch["num"])).squeeze(-1)

    def compute_loss(self, batch, out):
        y = batch["y_class"]
        loss1 = F.cross_entropy(out["stage1_logits"], y, weight=self.class_weight)
        purchasers = y != INACTIVE
        if purchasers.any():
            correct = self.training and self.correction_active() and "_teacher" in self.__dict__
            loss2 = splc_loss(
                out["stage2_logit"][purchasers],
                (y[purchasers] == ENGAGED).float(),
                tau=self.hparams.tau,
                correct=correct,
                direction=self.hparams.correction,
                decision_logits=self.teacher_logit(batch)[purchasers] if correct else None,
                reduction="balanced" if self.hparams.stage2_balanced else "mean",
                loss=self.hparams.stage2_loss,
                gamma=self.hparams.focal_gamma,
                margin=self.hparams.focal_margin,
            )
        else:
            loss2 = out["stage2_logit"].sum() * 0.0
        return {"loss": loss1 + loss2, "stage1_loss": loss1, "stage2_loss": loss2}

    def update_metrics(self, batch, out, stage):
        if stage == "train":
            return
        y = batch["y_class"]
        bacc = self.metrics[f"{stage}_stage1_bacc"]
        bacc.update(out["stage1_logits"], y)
        self.log(f"{stage}/stage1_bacc", bacc, on_step=False, on_epoch=True)
        purchasers = y != INACTIVE
        auc = self.metrics[f"{stage}_stage2_auc"]
        if purchasers.any():
            auc.update(out["p_prompted"][purchasers], (y[purchasers] == ENGAGED).long())
            if stage == "val":
                self.selection_auc.update(out["p_prompted"][purchasers], (y[purchasers] == ENGAGED).long())
        self.log(f"{stage}/stage2_auc", auc, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        # The best-epoch checkpoint is chosen on stage 2's AUC against the *observed* (noisy) label, which label
        # correction does not raise; left alone it picks a warm-up epoch and the corrected weights are never the
        # ones evaluated. So warm-up epochs score auc - 1 (in [-1, 0]): the selection prefers any corrected epoch,
        # and still the best warm-up epoch when training ends before correction starts.
        if self.selection_auc.update_count == 0:
            return
        value = self.selection_auc.compute()
        self.selection_auc.reset()
        warming_up = bool(self.hparams.label_correction) and not self.correction_active()
        self.log("val/selection_auc", value - 1.0 if warming_up else value, sync_dist=True)  # compute() synced it
