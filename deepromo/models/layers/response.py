"""What every response-task model shares: its validation/test AUC at the logged level and its DataFrame form
(``p`` at the logged level, then ``p_at_<level>`` for every column of the curve)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


class ResponseCurveOutputs:
    """Mixin for a response model (before ``PromoModel`` in the bases) with ``self.levels``, a ``metrics``
    dict holding ``val_auc`` / ``test_auc``, and ``p`` [B] / ``curve`` [B, L] forward outputs."""

    def update_metrics(self, batch, out, stage):
        if stage == "train":
            return
        auc = self.metrics[f"{stage}_auc"]
        auc.update(out["p"], batch["y"].long())
        self.log(f"{stage}/auc", auc, on_step=False, on_epoch=True)

    def frame_columns(self) -> list[str]:
        """``p`` at the logged incentive, then ``p_at_<level>`` for every level (the curve's columns)."""
        return ["p", *(f"p_at_{level:g}" for level in self.levels)]

    def output_frame(self, arrays, index=None) -> pd.DataFrame:
        frame = pd.DataFrame(np.asarray(arrays["curve"]), columns=self.frame_columns()[1:], index=index)
        frame.insert(0, "p", arrays["p"])
        return frame

    def frame_inputs(self, df: pd.DataFrame) -> dict[str, torch.Tensor]:
        """The logged treatment when the frame has its column (else ``p`` is at the first level)."""
        name = self.spec.treatment.name if self.spec.treatment else "incentive"
        if name in df.columns:
            return {"treatment": torch.tensor(pd.to_numeric(df[name]).to_numpy(np.float32))}
        return {}
