"""tarnet: treatment-agnostic representation network (Shalit, Johansson & Sontag 2017, ICML).

Φ(x) = MLP(embeddings(cat) ++ num), a representation shared by all treatment levels; one outcome head per
level k = 0 .. L-1 (level 0 = control / no incentive): logit_k(x) = head_k(Φ(x)), p_k(x) = sigmoid(logit_k).
Loss: BCE of the head of each row's logged level only, optionally weighted by 1 / propensity (normalised to
mean 1), so head k learns only from rows that got level k while Φ learns from all. curve[:, k] = p_k(x);
no monotonicity: the levels may be unordered arms (e.g. Hillstrom's Mens / Womens / No e-mail).
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


@register_model("tarnet")
class TARNet(ResponseCurveOutputs, PromoModel):
    task = "response"
    required_keys = ("cat", "num", "treatment", "y")
    defaults = {
        "hidden": [64, 64],  # layers of the shared representation Φ(x)
        "head_hidden": 32,  # hidden units of each outcome head (0 = a linear head on Φ)
        "dropout": 0.1,  # dropout after each hidden layer (trunk and heads)
        "lr": 3e-3,  # AdamW learning rate
        "weight_decay": 1e-4,  # AdamW weight decay
        "ipw": False,  # weight the outcome loss by 1 / propensity (for logs from a biased policy)
    }
    test_params = [{"hidden": [8], "head_hidden": 4}, {"hidden": [8], "head_hidden": 0, "ipw": True}]
    output_columns = ("p", "curve")  # curve [N, L]: the purchase probability at every level
    # the outcome log-loss at the logged level: logged per epoch and also reported by the response evaluator
    monitor = ("val/log_loss", "min")

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        self.check_hparams()
        self.levels = self.treatment_levels()
        self.register_buffer("level_values", torch.tensor(self.levels, dtype=torch.float32), persistent=False)
        hp = self.hparams
        self.encoder = FeatureEncoder(self.spec)
        # mlp() ends in a plain Linear; without it the blocks end in ReLU-Dropout, so Φ is non-linear
        self.trunk = mlp(self.encoder.out_dim, list(hp.hidden), 1, hp.dropout)[:-1]
        width = list(hp.hidden)[-1]
        head_layers = [hp.head_hidden] if hp.head_hidden else []
        self.heads = nn.ModuleList(mlp(width, head_layers, 1, hp.dropout) for _ in self.levels)
        self.metrics = nn.ModuleDict({f"{s}_auc": BinaryAUROC() for s in ("val", "test")})

    def check_hparams(self) -> None:
        """Refuse hyper-parameters the network cannot be built with, naming the key and what is expected."""
        hp = self.hparams
        hidden = hp.hidden
        if (not isinstance(hidden, (list, tuple)) or not hidden
                or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)):
            raise HyperParameterError(f"model '{self.name}': hidden={hidden!r}; expected a non-empty list of positive "
                                      "layer widths, e.g. [64, 64]")
        if isinstance(hp.head_hidden, bool) or not isinstance(hp.head_hidden, int) or hp.head_hidden < 0:
            raise HyperParameterError(f"model '{self.name}': head_hidden={hp.head_hidden!r}; expected a whole number "
                                      ">= 0 (0 = a linear head)")
        if isinstance(hp.dropout, bool) or not isinstance(hp.dropout, (int, float)) or not 0 <= hp.dropout < 1:
            raise HyperParameterError(f"model '{self.name}': dropout={hp.dropout!r}; expected a number in [0, 1)")
        if not isinstance(hp.ipw, bool):
            raise HyperParameterError(f"model '{self.name}': ipw={hp.ipw!r}; expected true or false")

    def treatment_levels(self) -> tuple[float, ...]:
        """The spec's discrete treatment levels (one outcome head each); a missing or continuous treatment is
        an error."""
        t = self.spec.treatment
        if t is None:
            raise HyperParameterError(f"model '{self.name}' needs a treatment in the spec: a response view with a "
                                      "logged incentive or arm column (one outcome head per level)")
        if not t.levels:
            raise HyperParameterError(
                f"model '{self.name}': treatment '{t.name}' is continuous (range [{t.low:g}, {t.high:g}], no levels); "
                f"expected discrete levels (at most 32 distinct logged values, or levels declared by the source), "
                "since there is one outcome head per level; use dipn for a continuous incentive")
        if len(t.levels) < 2:
            raise HyperParameterError(f"model '{self.name}': treatment '{t.name}' has the single level "
                                      f"{list(t.levels)}; expected a control level and at least one treated level")
        return tuple(float(v) for v in t.levels)

    def level_index(self, c: torch.Tensor) -> torch.Tensor:
        """[B] index of each row's level: the nearest level at or above its treatment value (as the task's
        ``at_logged_level``)."""
        index = torch.searchsorted(self.level_values, c.to(self.level_values.dtype).contiguous())
        return index.clamp(0, len(self.levels) - 1)

    def representation(self, batch) -> torch.Tensor:
        """Φ(x): ``[B, hidden[-1]]``."""
        return self.trunk(self.encoder(batch["cat"], batch["num"]))

    def forward(self, batch):
        phi = self.representation(batch)
        logits = torch.cat([head(phi) for head in self.heads], dim=-1)  # [B, L]
        c = batch["treatment"] if "treatment" in batch else torch.zeros(len(phi), device=phi.device)
        level = self.level_index(c)
        logit = logits.gather(1, level.unsqueeze(-1)).squeeze(-1)
        return {"phi": phi, "logits": logits, "level": level, "logit": logit, "p": torch.sigmoid(logit),
                "curve": torch.sigmoid(logits)}

    def row_weights(self, batch) -> torch.Tensor | None:
        """[B] inverse-propensity weights normalised to mean 1 with ``ipw``, else None."""
        if not self.hparams.ipw:
            return None
        if "propensity" not in batch:
            raise HyperParameterError(f"model '{self.name}': ipw=true needs the logged propensity "
                                      "(batch['propensity']); the data has none, so set ipw: false")
        weight = 1.0 / batch["propensity"]
        return weight / weight.mean()

    def outcome_loss(self, batch, out) -> tuple[torch.Tensor, torch.Tensor]:
        """(BCE of each row's logged-level head, inverse-propensity weighted with ``ipw``; the plain mean BCE,
        which is the log-loss at the logged level)."""
        bce = F.binary_cross_entropy_with_logits(out["logit"], batch["y"], reduction="none")
        weight = self.row_weights(batch)
        return (bce if weight is None else bce * weight).mean(), bce.mean()

    def compute_loss(self, batch, out):
        outcome, log_loss = self.outcome_loss(batch, out)
        return {"loss": outcome, "log_loss": log_loss}

    @torch.inference_mode()
    def predict_curve(self, tensors: dict[str, torch.Tensor], batch_size: int = 65536) -> np.ndarray:
        """Purchase probability at every level for each row: ``[N, L]`` (rows of ``cat``/``num``)."""
        return self.predict_output(tensors, "curve", batch_size)

    @torch.inference_mode()
    def predict_output(self, tensors: dict[str, torch.Tensor], key: str, batch_size: int = 65536) -> np.ndarray:
        """One ``[N, L]`` forward output (``curve``, or dragonnet's ``propensity``) for rows of ``cat``/``num``."""
        was_training = self.training
        self.eval()
        n = len(tensors["cat"])
        parts = []
        for start in range(0, n, batch_size):
            batch = {k: tensors[k][start:start + batch_size].to(self.device) for k in ("cat", "num")}
            parts.append(self(batch)[key].float().cpu().numpy())
        self.train(was_training)
        return np.concatenate(parts) if parts else np.zeros((0, len(self.levels)), dtype=np.float32)
