import numpy as np
import pandas as pd
import pytest

from deepromo.data.preprocess import Preprocessor
from deepromo.data.tables import DataValidationError


def frame():
    return pd.DataFrame({"region": ["n", "s", "s", "e"], "spend": [0.0, 10.0, 20.0, 30.0], "age": [20, 30, 40, 50]})


def test_vocab_zero_is_unknown_and_scaling():
    p = Preprocessor(["region"], ["spend", "age"], log_columns=["spend"]).fit(frame())
    assert p.vocab["region"] == ["e", "n", "s"]
    cat, num = p.transform(pd.DataFrame({"region": ["s", "west", None], "spend": [10.0, 0, 0], "age": [35, 35, 35]}))
    assert cat[:, 0].tolist() == [3, 0, 0]  # unseen and missing -> 0
    assert num.dtype == np.float32
    logs = np.log1p([0.0, 10, 20, 30])
    assert num[0, 0] == pytest.approx((np.log1p(10) - logs.mean()) / logs.std(), rel=1e-5)
    assert num[0, 1] == pytest.approx(0.0, abs=1e-6)  # age 35 is the mean
    assert p.categorical_features()[0].cardinality == 4


def test_json_round_trip_gives_same_transform(tmp_path):
    p = Preprocessor(["region"], ["spend", "age"]).fit(frame())
    p.save(tmp_path / "pre.json")
    q = Preprocessor.load(tmp_path / "pre.json")
    for a, b in zip(p.transform(frame()), q.transform(frame())):
        np.testing.assert_array_equal(a, b)


def test_bad_numeric_values_are_named():
    p = Preprocessor(["region"], ["spend", "age"]).fit(frame())
    bad = frame().assign(spend=[1.0, np.nan, 2.0, np.inf])
    with pytest.raises(DataValidationError, match=r"column 'spend' has 2 NaN/inf"):
        p.transform(bad)
    with pytest.raises(DataValidationError, match=r"lacks required column\(s\) \['age'\]"):
        p.transform(frame().drop(columns="age"))
    with pytest.raises(DataValidationError, match="column 'age' must be numeric"):
        p.transform(frame().assign(age=["a", "b", "c", "d"]))
