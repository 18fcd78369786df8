"""txl: Transformer-XL purchase predictor with focal loss (DESIGN §5; seeds/002 §4.2).

Input per customer: the newest ``max_len`` events (PromoBatch ``seq_cat``, ``seq_num``, ``seq_mask``,
right-aligned so the newest event is at position L-1), the static attributes and 7/30/90-day window
aggregates (``cat``, ``num``) and the time since the newest event (``seq_dt``). Output: the probability of
a purchase in the next window.

Relative attention (Dai et al. 2019), for query position i and key position j <= i, per head:

    score(i, j) = [(q_i + u) . k_j + (q_i + v) . W_R R_{i-j}] / sqrt(d_head)

R is the sinusoidal encoding of the distance i - j (capped at ``clamp_len`` when > 0), u and v are
learned global biases (one pair per layer). Segment recurrence: the event sequence is cut into segments
of ``seg_len`` events, processed oldest first; each layer attends to its own segment and to a memory of
the last ``mem_len`` hidden states of the *same customer's* earlier segments (detached: no gradient
flows into the past, Lightning 2 has no truncated BPTT). The memory is carried explicitly inside
``forward`` along each batch row, and a row is one customer, so a shuffling loader can never hand one
customer's memory to another. With ``mem_len`` >= the history length the segmented computation equals
the full-context one (tested). ``same_length``: every query attends to at most ``mem_len`` + 1 positions.

``encoder: gru | bilstm`` swaps the Transformer-XL for a recurrent encoder over the same inputs and head
(the paper's baselines); ``mem_len: 0`` is Transformer-XL without memory (it sees only the last segment).
Loss: focal loss with alpha weighting the positives; the output bias starts at the prior log-odds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from deepromo.data.sequences import (
    HISTORY_COLUMN,
    check_events,
    events_to_history,
    group_events,
    history_to_events,
    pad_sequences,
)
from deepromo.data.tables import DataValidationError
from deepromo.models.base import HyperParameterError, PromoModel
from deepromo.models.layers import FeatureEncoder, mlp
from deepromo.models.losses import focal_loss
from deepromo.models.registry import register_model

ENCODERS = ("txl", "gru", "bilstm")
Memory = tuple[list[torch.Tensor], torch.Tensor]  # per-layer hidden states [B, M, d], key mask [B, M]


def sinusoid(distances: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal encodings ``[len(distances), d_model]`` of relative distances (Vaswani et al.)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d_model, 2, device=distances.device, dtype=torch.float32) / d_model))
    angles = distances.float().unsqueeze(1) * inv_freq.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class RelativeAttention(nn.Module):
    """Multi-head attention with Transformer-XL relative positions over [memory; segment]."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, clamp_len: int, same_length: bool, mem_len: int):
        super().__init__()
        if d_model % n_heads:
            raise HyperParameterError(f"txl: d_model={d_model} must be divisible by n_heads={n_heads}")
        self.h, self.dh = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.r = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.u = nn.Parameter(torch.zeros(n_heads, self.dh))
        self.v = nn.Parameter(torch.zeros(n_heads, self.dh))
        self.drop = nn.Dropout(dropout)
        self.clamp_len, self.same_length, self.mem_len = clamp_len, same_length, mem_len
        self._positions_cache = None  # (key, positions) of the last no-grad call, see relative_positions

    def relative_positions(self, M: int, S: int, device) -> tuple:
        """What depends only on the lengths and ``W_R``: distance index ``[S, K]`` into ``r [n_dist, h, dh]``,
        the causal / same-length key mask ``[S, K]`` and the diagonal ``[S, K]``.

        Without autograd (serving: one new event on a full memory, request after request, is the same (M, S))
        the last result is reused while ``W_R`` is unchanged: rebuilding it is ~15 small ops per layer, about a
        quarter of a one-event step. With autograd it is always rebuilt (no graph is shared between steps).
        """
        weight = self.r.weight
        reuse = not torch.is_grad_enabled() and not weight.is_inference()  # an inference tensor has no version
        key = (M, S, str(device), weight.data_ptr(), weight._version, weight.dtype) if reuse else None
        cached = getattr(self, "_positions_cache", None)  # None on a module pickled before the cache existed
        if reuse and cached is not None and cached[0] == key:
            return cached[1]
        K = M + S
        dist = (M + torch.arange(S, device=device)).unsqueeze(1) - torch.arange(K, device=device).unsqueeze(0)
        idx = dist.clamp(0, self.clamp_len) if self.clamp_len > 0 else dist.clamp(min=0)  # [S, K]
        n_dist = int(idx.max()) + 1
        r = self.r(sinusoid(torch.arange(n_dist, device=device), weight.shape[1])).view(n_dist, self.h, self.dh)
        causal = dist >= 0
        if self.same_length:
            causal = causal & (dist <= self.mem_len)
        positions = (idx, r, causal, dist == 0)
        if reuse:
            self._positions_cache = (key, positions)
        return positions

    def forward(self, h: torch.Tensor, mem: torch.Tensor | None, key_mask: torch.Tensor) -> torch.Tensor:
        """h ``[B, S, d]``, mem ``[B, M, d]`` or None, key_mask ``[B, M + S]`` (True = a real event) -> ``[B, S, d]``."""
        B, S, d = h.shape
        M = 0 if mem is None else mem.shape[1]
        K = M + S
        context = h if mem is None else torch.cat([mem, h], dim=1)
        q = self.q(h).view(B, S, self.h, self.dh)
        k, v = self.kv(context).view(B, K, 2, self.h, self.dh).unbind(2)
        idx, r, causal, diagonal = self.relative_positions(M, S, h.device)
        content = torch.einsum("bshd,bkhd->bhsk", q + self.u, k)
        position = torch.einsum("bshd,nhd->bhsn", q + self.v, r)  # score per distance ...
        position = position.gather(-1, idx.expand(B, self.h, S, K))  # ... placed at each (i, j)
        allowed = causal.unsqueeze(0) & key_mask.unsqueeze(1)  # causal (same_length) and no padding: [B, S, K]
        allowed = allowed | diagonal.unsqueeze(0)  # a padded query sees itself: no all -inf rows (NaN)
        score = (content + position) / math.sqrt(self.dh)
        score = score.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        attn = self.drop(torch.softmax(score, dim=-1))
        return self.out(torch.einsum("bhsk,bkhd->bshd", attn, v).reshape(B, S, d))


class TXLLayer(nn.Module):
    """Relative attention and a position-wise feed-forward block, each with a residual and LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, d_inner: int, dropout: float, **attn):
        super().__init__()
        self.attn = RelativeAttention(d_model, n_heads, dropout, **attn)
        self.ff = nn.Sequential(nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(d_inner, d_model), nn.Dropout(dropout))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, mem, key_mask):
        h = self.norm1(h + self.drop(self.attn(h, mem, key_mask)))
        return self.norm2(h + self.ff(h))


@register_model("txl")
class TransformerXLPurchase(PromoModel):
    task = "purchase"
    required_keys = ("cat", "num", "seq_cat", "seq_num", "seq_mask", "seq_dt", "y")
    defaults = {
        "encoder": "txl",  # txl | gru | bilstm (the recurrent baselines over the same inputs and head)
        "d_model": 64,  # hidden size (paper: 256, experiment=txl_paper)
        "n_heads": 4,  # attention heads (paper: 8)
        "n_layers": 2,  # Transformer-XL layers (recurrent layers for gru / bilstm)
        "d_inner": 128,  # feed-forward hidden size (paper size: 512)
        "dropout": 0.2,  # dropout (paper: 0.2)
        "lr": 1e-3,  # AdamW learning rate (paper: 2e-4 for its larger model)
        "weight_decay": 0.01,
        "max_len": 64,  # newest events read per customer
        "seg_len": 16,  # events per segment
        "mem_len": 32,  # memory length per layer (0 = no memory)
        "clamp_len": 0,  # relative distances above this share one encoding (0 = no clamp)
        "same_length": False,  # every query attends to at most mem_len + 1 positions
        "head_hidden": 64,  # hidden units of the prediction head
        "focal_gamma": 2.0,  # focal loss focusing parameter (0 = weighted BCE)
        "focal_alpha": 0.75,  # weight of positives (1 - alpha for negatives); < 0 = unweighted
        "prior": None,  # prior purchase rate for the output bias; from the training labels when None
    }
    test_params = [
        {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_inner": 32, "max_len": 16, "seg_len": 8, "mem_len": 8,
         "head_hidden": 8, "lr": 3e-3},
        {"encoder": "gru", "d_model": 16, "n_layers": 1, "max_len": 16, "head_hidden": 8, "lr": 3e-3},
        {"encoder": "bilstm", "d_model": 16, "n_layers": 1, "max_len": 16, "head_hidden": 8, "lr": 3e-3},
    ]
    monitor = ("val/auc", "max")
    output_columns = ("p",)
    predict_batch_size = 1024

    def __init__(self, spec, **hparams):
        super().__init__(spec, **hparams)
        hp = self.hparams
        if hp.encoder not in ENCODERS:
            raise HyperParameterError(f"txl: encoder must be one of {ENCODERS}, got '{hp.encoder}'")
        for key in ("d_model", "n_heads", "n_layers", "max_len", "seg_len"):
            if int(hp[key]) < 1:
                raise HyperParameterError(f"txl: {key} must be >= 1, got {hp[key]}")
        if hp.mem_len < 0 or hp.clamp_len < 0:
            raise HyperParameterError(f"txl: mem_len and clamp_len must be >= 0, got {hp.mem_len} and {hp.clamp_len}")
        seq_cat = [f for f in self.spec.sequence if f.kind == "categorical"]
        n_seq_num = sum(1 for f in self.spec.sequence if f.kind == "numeric")
        if not seq_cat and not n_seq_num:
            raise HyperParameterError("txl needs event sequences in the spec (the 'purchase' view)")
        d = int(hp.d_model)
        self.event_embeddings = nn.ModuleList(nn.Embedding(f.cardinality, d, padding_idx=0) for f in seq_cat)
        self.event_numeric = nn.Linear(n_seq_num, d)
        self.input_drop = nn.Dropout(hp.dropout)
        if hp.encoder == "txl":
            self.layers = nn.ModuleList(
                TXLLayer(d, hp.n_heads, hp.d_inner, hp.dropout, clamp_len=int(hp.clamp_len),
                         same_length=bool(hp.same_length), mem_len=int(hp.mem_len))
                for _ in range(hp.n_layers))
        else:
            rnn = nn.GRU if hp.encoder == "gru" else nn.LSTM
            bidirectional = hp.encoder == "bilstm"
            self.rnn = rnn(d, d // 2 if bidirectional else d, num_layers=hp.n_layers, batch_first=True,
                           bidirectional=bidirectional, dropout=hp.dropout if hp.n_layers > 1 else 0.0)
        self.static = FeatureEncoder(self.spec)
        self.head = mlp(d + self.static.out_dim + 2, [hp.head_hidden], 1, hp.dropout)
        prior = 0.5 if hp.prior is None else min(max(float(hp.prior), 1e-4), 1 - 1e-4)
        with torch.no_grad():  # start at the base rate: the first steps are not spent learning it
            self.head[-1].bias.fill_(math.log(prior / (1 - prior)))
        from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

        self.metrics = nn.ModuleDict({f"{s}_{m}": cls() for s in ("val", "test")
                                      for m, cls in (("auc", BinaryAUROC), ("pr_auc", BinaryAveragePrecision))})

    @classmethod
    def hparams_from_data(cls, datamodule) -> dict:
        """The training purchase rate, for the output bias (focal loss starts from the prior log-odds)."""
        y = datamodule.tensors["y"][torch.as_tensor(datamodule.indices["train"])]
        return {"prior": float(y.mean())}

    @classmethod
    def datamodule_options(cls, params: dict) -> dict:
        return {"sequence_length": int({**cls.defaults, **params}["max_len"])}

    # --- encoders -----------------------------------------------------------------------
    def embed_events(self, seq_cat: torch.Tensor, seq_num: torch.Tensor) -> torch.Tensor:
        """``seq_cat [B, L, Ns], seq_num [B, L, Nq] -> [B, L, d]``."""
        x = self.event_numeric(seq_num)
        for j, emb in enumerate(self.event_embeddings):
            x = x + emb(seq_cat[..., j])
        return self.input_drop(x)

    def segment_step(self, x: torch.Tensor, mask: torch.Tensor, memory: Memory | None) -> tuple[torch.Tensor, Memory]:
        """One segment through every layer with the memory of the same customers' earlier events.

        x ``[B, S, d]`` event embeddings, mask ``[B, S]``. Returns the top layer's states ``[B, S, d]`` and the
        new memory: per layer, the last ``mem_len`` inputs of that layer (detached), and their mask.
        """
        mems, mem_mask = memory if memory is not None else ([None] * len(self.layers), None)
        key_mask = mask if mem_mask is None else torch.cat([mem_mask, mask], dim=1)
        m = int(self.hparams.mem_len)
        new_mems, h = [], x
        for layer, mem in zip(self.layers, mems):
            if m:
                new_mems.append((h if mem is None else torch.cat([mem, h], dim=1))[:, -m:].detach())
            h = layer(h, mem, key_mask)
        if not m:
            return h, None
        return h, (new_mems, key_mask[:, -m:])

    def encode_txl(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Segments oldest first with recurrence; returns the newest event's top-layer state ``[B, d]``."""
        S = int(self.hparams.seg_len)
        L = x.shape[1]
        pad = (-L) % S  # pad on the left so segments end exactly at the newest event
        if pad:
            x = torch.cat([x.new_zeros(x.shape[0], pad, x.shape[2]), x], dim=1)
            mask = torch.cat([mask.new_zeros(mask.shape[0], pad), mask], dim=1)
        # segments that are padding for every row of the batch change nothing: skip them
        has_event = mask.view(mask.shape[0], -1, S).any(dim=(0, 2))
        first = int(has_event.nonzero()[0]) if bool(has_event.any()) else has_event.numel() - 1
        memory, h = None, None
        for start in range(first * S, x.shape[1], S):
            h, memory = self.segment_step(x[:, start:start + S], mask[:, start:start + S], memory)
        return h[:, -1]

    def encode_rnn(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """GRU / BiLSTM over each customer's events (padding removed by packing) -> ``[B, d]``."""
        lengths = mask.sum(dim=1)
        L = x.shape[1]
        # right-aligned -> left-aligned, as packing expects
        shift = (torch.arange(L, device=x.device).unsqueeze(0) + (L - lengths).unsqueeze(1)) % L
        x = x.gather(1, shift.unsqueeze(-1).expand_as(x))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        hn = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        if self.hparams.encoder == "bilstm":
            return torch.cat([hn[-2], hn[-1]], dim=-1)
        return hn[-1]

    def readout(self, h_last: torch.Tensor, batch, static: torch.Tensor | None = None) -> torch.Tensor:
        """The newest event's state, the static features and the recency -> purchase logit ``[B]``.

        static: ``self.static(batch["cat"], batch["num"])`` when the caller has it already (the streaming
        scorer keeps it per customer).
        """
        any_event = batch["seq_mask"].any(dim=1, keepdim=True).float()
        recency = torch.log1p(batch["seq_dt"][:, -1:].clamp(min=0)) * any_event
        if static is None:
            static = self.static(batch["cat"], batch["num"])
        z = torch.cat([h_last * any_event, static, recency, any_event], dim=-1)
        return self.head(z).squeeze(-1)

    def forward(self, batch):
        x = self.embed_events(batch["seq_cat"], batch["seq_num"])
        mask = batch["seq_mask"]
        h = self.encode_txl(x, mask) if self.hparams.encoder == "txl" else self.encode_rnn(x, mask)
        logit = self.readout(h, batch)
        return {"logit": logit, "p": torch.sigmoid(logit)}

    def compute_loss(self, batch, out):
        hp = self.hparams
        return {"loss": focal_loss(out["logit"], batch["y"], hp.focal_gamma, hp.focal_alpha, batch.get("weight"))}

    def update_metrics(self, batch, out, stage: str) -> None:
        if stage == "train":
            return
        for name in ("auc", "pr_auc"):
            metric = self.metrics[f"{stage}_{name}"]
            metric.update(out["p"].detach(), batch["y"].long())
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True)

    def frame_inputs(self, df: pd.DataFrame, events: pd.DataFrame | None = None, as_of=None) -> dict[str, torch.Tensor]:
        """The ``seq_*`` tensors of the frame's customers, for ``predict_frame(df, events=..., as_of=...)``.

        df: one row per customer with ``customer_id`` and the feature columns. events: the long events table
        (``customer_id, ts, event_type, category, amount, promo_active``); when None, ``df['event_history']``
        holds each customer's events as JSON (the registry's pyfunc input). as_of: the prediction time in days
        (scalar or per row); when None, ``df['as_of']`` if present, else each customer's newest event time.
        """
        if self.preprocessor.events is None:
            raise RuntimeError("txl has no preprocessor with an event encoder attached; train it or load a checkpoint")
        if "customer_id" not in df.columns:
            raise DataValidationError("txl scoring needs a 'customer_id' column to join each customer's events")
        if events is None:
            events = history_to_events(df)
        check_events(events)
        if as_of is None and "as_of" in df.columns:
            as_of = df["as_of"].to_numpy(dtype=np.float64)
        if as_of is None:  # just after each customer's newest event
            newest = events.groupby("customer_id")["ts"].max()
            as_of = np.nextafter(newest.reindex(df["customer_id"]).fillna(0.0).to_numpy(dtype=np.float64), np.inf)
        seqs = group_events(events, df["customer_id"].to_numpy(), as_of)
        return {k: torch.from_numpy(v) for k, v in pad_sequences(seqs, self.preprocessor.events).items()}

    def example_frame(self, view, rows: int = 5) -> pd.DataFrame:
        """Registry input example: feature columns, ``customer_id``, ``as_of`` and ``event_history`` (JSON)."""
        head = view.subset(np.arange(min(rows, len(view))))  # each row's own history and as_of (rolling views too)
        out = head.frame[["customer_id", *self.preprocessor.columns]].copy()
        as_of = head.sequences.as_of
        out["as_of"] = float(as_of) if np.ndim(as_of) == 0 else np.asarray(as_of, dtype=np.float64)
        out[HISTORY_COLUMN] = events_to_history(head.sequences)
        return out


__all__ = ["TransformerXLPurchase", "RelativeAttention", "sinusoid", "ENCODERS"]
