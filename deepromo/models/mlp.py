"""mlp: a plain multilayer perceptron on the engaged-purchase label, a one-network peer of splc.

P(engaged purchase | x) = sigmoid(MLP(embeddings(cat) ++ num)), trained with class-balanced BCE.
Targeting score = that probability; a customer is called prompted above ``decision_threshold``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryAUROC

from deepromo.models.base import PromoModel
from deepromo.models.layers import FeatureEncoder, mlp
from deepromo.models.registry import register_model


@register_model("mlp")
class TargetingMLP(PromoModel):
    task = "targeting"  # the customer view, the targeting evaluator, its plots and baselines
    required_keys = ("cat", "num", "y")
    defaults = {
        "hidden": [64, 32],  # hidden layer widths
        "dropout": 0.1,  # dropout after each hidden layer
        "lr": 3e-3,  # AdamW learning rate
        "weight_decay": 1e-4,  # AdamW weight decay
        "pos_weight": 1.0,  # weight of positive rows in the BCE (from the training data: negatives / positives)
        "decision_threshold": 0.5,  # probability above which a customer is called prompted
    }
    test_params = [{"hidden": [8]}, {"hidden": [8, 8], "dropout": 0.0}]
    monitor = ("val/auc", "max")
    output_columns = ("score", "pred_prompted")

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        self.encoder = FeatureEncoder(self.spec)
        self.net = mlp(self.encoder.out_dim, list(self.hparams.hidden), 1, self.hparams.dropout)
        self.auc = torch.nn.ModuleDict({stage: BinaryAUROC() for stage in ("val", "test")})

    @classmethod
    def hparams_from_data(cls, datamodule) -> dict:
        y = datamodule.tensors["y"][torch.as_tensor(datamodule.indices["train"])]
        return {"pos_weight": float((len(y) - y.sum()) / y.sum().clamp(min=1))}

    def forward(self, batch):
        logit = self.net(self.encoder(batch["cat"], batch["num"])).squeeze(-1)
        score = torch.sigmoid(logit)
        return {"logit": logit, "score": score, "pred_prompted": (score > self.hparams.decision_threshold).float()}

    def compute_loss(self, batch, out):
        weight = torch.tensor(self.hparams.pos_weight, device=out["logit"].device)
        return {"loss": F.binary_cross_entropy_with_logits(out["logit"], batch["y"], pos_weight=weight)}

    def update_metrics(self, batch, out, stage):
        if stage != "train":
            self.auc[stage].update(out["score"], batch["y"].long())
            self.log(f"{stage}/auc", self.auc[stage], on_step=False, on_epoch=True)
