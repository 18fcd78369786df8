"""FeatureSpec: what a model may read, as frozen dataclasses with a JSON round-trip.

A model is built from a spec plus plain hyper-parameters, never from a dataset object, and
the spec travels inside every checkpoint as a plain dict (``FeatureSpec.to_dict``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CategoricalFeature:
    """A static categorical feature; index 0 is reserved for unknown/unseen values."""

    name: str
    cardinality: int  # number of indices including 0 = unknown
    embedding_dim: int = 8


@dataclass(frozen=True)
class NumericFeature:
    """A static numeric feature, standardised by the Preprocessor."""

    name: str


@dataclass(frozen=True)
class SequenceFeature:
    """One per-event feature of the behaviour sequence (kind: "categorical" or "numeric")."""

    name: str
    kind: str
    max_len: int
    cardinality: int = 0  # categorical only, incl. 0 = unknown/padding


@dataclass(frozen=True)
class TreatmentSpec:
    """The incentive: discrete ordered ``levels`` or a continuous range [low, high].

    direction: +1 if the response must be non-decreasing in the treatment, -1 if non-increasing.
    arms: for unordered categorical arms, the name of each level (level 0 = the control arm); their
    codes 0..K are labels, not amounts, so no model may treat them as ordered. None = ordered amounts.
    """

    name: str
    levels: tuple[float, ...] | None = None
    low: float = 0.0
    high: float = 1.0
    direction: int = 1
    arms: tuple[str, ...] | None = None

    @property
    def ordered(self) -> bool:
        """True for incentive amounts (monotone models apply), False for unordered arms."""
        return self.arms is None


@dataclass(frozen=True)
class LabelSpec:
    """A target: task is "binary", "multiclass" or "ranking"; classes name the class indices."""

    name: str
    task: str
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphSpec:
    """Node types and (src, relation, dst) edge types of a heterogeneous graph, and per node type its
    node count, the cardinalities of its ``x_cat`` columns (incl. 0 = unknown) and its ``x_num`` width."""

    node_types: tuple[str, ...] = ()
    edge_types: tuple[tuple[str, str, str], ...] = ()
    num_nodes: dict = field(default_factory=dict, compare=False, hash=False)
    cat_cardinalities: dict = field(default_factory=dict, compare=False, hash=False)
    num_features: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything a model needs to know about its inputs and targets."""

    categorical: tuple[CategoricalFeature, ...] = ()
    numeric: tuple[NumericFeature, ...] = ()
    sequence: tuple[SequenceFeature, ...] = ()
    treatment: TreatmentSpec | None = None
    labels: tuple[LabelSpec, ...] = ()
    graph: GraphSpec | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def n_categorical(self) -> int:
        return len(self.categorical)

    @property
    def n_numeric(self) -> int:
        return len(self.numeric)

    def label(self, name: str) -> LabelSpec:
        for lab in self.labels:
            if lab.name == name:
                return lab
        raise KeyError(f"label '{name}' is not in the spec; labels are {[l.name for l in self.labels]}")

    def to_dict(self) -> dict:
        """Plain dict of str/int/float/list/None only (safe for ``torch.load(weights_only=True)``)."""
        d = asdict(self)
        return json.loads(json.dumps(d))  # tuples -> lists, guaranteed JSON primitives

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        t = d.get("treatment")
        g = d.get("graph")
        return cls(
            categorical=tuple(CategoricalFeature(**c) for c in d.get("categorical", ())),
            numeric=tuple(NumericFeature(**c) for c in d.get("numeric", ())),
            sequence=tuple(SequenceFeature(**c) for c in d.get("sequence", ())),
            treatment=None
            if t is None
            else TreatmentSpec(**{**t, "levels": None if t.get("levels") is None else tuple(t["levels"]),
                                  "arms": None if t.get("arms") is None else tuple(t["arms"])}),
            labels=tuple(LabelSpec(l["name"], l["task"], tuple(l.get("classes", ()))) for l in d.get("labels", ())),
            graph=None
            if g is None
            else GraphSpec(tuple(g["node_types"]), tuple(tuple(e) for e in g["edge_types"]),
                           num_nodes=dict(g.get("num_nodes", {})),
                           cat_cardinalities={k: list(v) for k, v in g.get("cat_cardinalities", {}).items()},
                           num_features=dict(g.get("num_features", {}))),
            extra=dict(d.get("extra", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        return cls.from_dict(json.loads(text))
