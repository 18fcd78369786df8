import pytest
import torch

from deepromo.data.batch import BatchValidationError, validate_batch
from deepromo.data.spec import (
    CategoricalFeature,
    FeatureSpec,
    GraphSpec,
    LabelSpec,
    NumericFeature,
    SequenceFeature,
    TreatmentSpec,
)

SPEC = FeatureSpec(
    categorical=(CategoricalFeature("region", 6, 4), CategoricalFeature("device", 4, 3)),
    numeric=(NumericFeature("tenure"), NumericFeature("spend")),
    sequence=(SequenceFeature("event_type", "categorical", 50, 5), SequenceFeature("amount", "numeric", 50)),
    treatment=TreatmentSpec("incentive", levels=(0.0, 5.0, 10.0)),
    labels=(LabelSpec("segment", "multiclass", ("inactive", "unengaged", "engaged")),),
    graph=GraphSpec(("customer", "offer"), (("customer", "redeemed", "offer"),)),
)


def good_batch(b=4):
    return {
        "cat": torch.tensor([[1, 2], [0, 3], [5, 1], [2, 0]])[:b],
        "num": torch.randn(b, 2),
        "y_class": torch.tensor([0, 1, 2, 1])[:b],
        "y": torch.tensor([0.0, 1.0, 1.0, 0.0])[:b],
        "propensity": torch.full((b,), 0.5),
    }


def test_spec_json_round_trip_is_exact():
    again = FeatureSpec.from_json(SPEC.to_json())
    assert again == SPEC
    assert again.treatment.levels == (0.0, 5.0, 10.0)
    assert again.graph.edge_types == (("customer", "redeemed", "offer"),)
    assert SPEC.to_dict() == again.to_dict()


def test_valid_batch_passes():
    validate_batch(good_batch(), SPEC, required=("cat", "num", "y_class"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop("num"), "lacks required key(s) ['num']"),
        (lambda b: b.update(num=torch.randn(4, 3)), "dimension Nn is 3, expected 2"),
        (lambda b: b.update(cat=b["cat"].float()), "batch['cat'] must have dtype torch.int64"),
        (lambda b: b.update(num=torch.randn(4)), "batch['num'] must have shape ['B', 'Nn']"),
        (lambda b: b.update(y_class=torch.tensor([0, 1, 2])), "dimension B is 3, expected 4"),
        (lambda b: b["num"].__setitem__((0, 0), float("nan")), "batch['num'] contains NaN"),
        (lambda b: b["cat"].__setitem__((0, 1), 4), "column 1 ('device') has index outside [0, 4)"),
        (lambda b: b.update(propensity=torch.zeros(4)), "propensity'] must lie in (0, 1]"),
        (lambda b: b.update(y=torch.full((4,), 0.5)), "batch['y'] must contain only 0 and 1"),
    ],
)
def test_validator_names_the_key(mutate, message):
    batch = good_batch()
    mutate(batch)
    with pytest.raises(BatchValidationError) as err:
        validate_batch(batch, SPEC, required=("cat", "num", "y_class"))
    assert message in str(err.value)
