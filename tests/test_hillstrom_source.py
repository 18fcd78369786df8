"""The hillstrom source: a hand-checked Hillstrom-format CSV, every bad-input error, views, and (slow) the real file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import by_customer

from deepromo.data.sources import hillstrom as hs
from deepromo.data.sources import load_source
from deepromo.data.tables import DataValidationError

HEADER = "recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,conversion,spend"
LINES = [
    '10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0',
    '6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,0,0,0',
    '7,2) $100 - $200,180.65,0,1,Surburban,1,Web,Womens E-Mail,1,0,0',
    '5,"6) $750 - $1,000",828.42,1,0,Rural,1,Web,Mens E-Mail,1,1,34.5',
    '2,1) $0 - $100,45.34,1,0,Urban,0,Web,Womens E-Mail,1,1,29.99',
    '6,2) $100 - $200,134.83,0,1,Surburban,0,Phone,No E-Mail,1,0,0',
    '9,3) $200 - $350,280.2,1,0,Surburban,1,Phone,Mens E-Mail,0,0,0',
    '1,1) $0 - $100,29.99,0,1,Urban,1,Multichannel,No E-Mail,0,0,0',
]
REAL_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom.csv"


def write_csv(tmp_path, lines=LINES, header=HEADER, name="mail.csv") -> str:
    path = tmp_path / name
    path.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode())  # CRLF like the original file
    return str(path)


@pytest.fixture
def csv(tmp_path):
    return write_csv(tmp_path)


# ---------------------------------------------------------------- the mapping, checked by hand


def test_any_email_vs_none(csv):
    d = load_source("hillstrom", path=csv)
    assert d.name == "hillstrom" and d.history_end == 0.0 and d.response_days == 14.0
    assert d.incentive_levels == (0.0, 1.0) and len(d.events) == 0 and d.offers is None
    c = d.customers
    assert c["customer_id"].tolist() == list(range(8))
    assert c["recency"].tolist() == [10.0, 6.0, 7.0, 5.0, 2.0, 6.0, 9.0, 1.0]
    assert c["history"].tolist()[:4] == [142.44, 329.08, 180.65, 828.42]
    assert c["mens"].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert c["newbie"].dtype == np.float64 and c["newbie"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert c.loc[3, "history_segment"] == "6) $750 - $1,000"  # quoted comma
    assert c.loc[0, "zip_code"] == "Surburban" and c.loc[7, "channel"] == "Multichannel"
    assert {col for col in c.columns if isinstance(c[col].dtype, pd.CategoricalDtype)} == set(hs.CATEGORICAL)
    e = d.exposures
    assert e["treatment"].tolist() == [1, 0, 1, 1, 1, 0, 1, 0]
    assert e["incentive"].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert e["propensity"].tolist() == pytest.approx([2 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1 / 3, 2 / 3, 1 / 3])
    assert e["engaged"].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]  # treated visitors; row 5 visited but got no e-mail
    assert e["arm"].astype(str).tolist()[:2] == ["Womens E-Mail", "No E-Mail"]
    assert (e["ts"] == 0).all() and (e["offer_id"] == -1).all()
    o = d.outcomes
    assert o["purchased"].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]  # visit
    assert o["revenue"].tolist() == [0.0, 0.0, 0.0, 34.5, 29.99, 0.0, 0.0, 0.0]
    rates = d.meta["arm_rates"]
    assert rates["Mens E-Mail"]["visit"] == 0.5 and rates["Womens E-Mail"]["visit"] == pytest.approx(2 / 3)
    assert rates["No E-Mail"]["visit"] == pytest.approx(1 / 3) and rates["Mens E-Mail"]["spend"] == 17.25


def test_single_arm_and_conversion(csv):
    mens = load_source("hillstrom", path=csv, treatment_arm="mens")
    assert mens.customers["customer_id"].tolist() == [1, 3, 5, 6, 7]  # women's rows dropped, numbers kept
    assert by_customer(mens.exposures, "treatment") == {1: 0, 3: 1, 5: 0, 6: 1, 7: 0}
    assert (mens.exposures["propensity"] == 0.5).all()
    assert mens.meta["counts"] == {"rows_in_file": 8, "rows": 5, "rows_dropped": 3, "treated_share": 0.4,
                                   "label_rate": 0.4}
    womens = load_source("hillstrom", path=csv, treatment_arm="womens", outcome="conversion")
    assert womens.customers["customer_id"].tolist() == [0, 1, 2, 4, 5, 7]
    assert by_customer(womens.outcomes, "purchased") == {0: 0, 1: 0, 2: 0, 4: 1, 5: 0, 7: 0}
    assert by_customer(womens.exposures, "engaged") == {0: 0, 1: 0, 2: 1, 4: 1, 5: 0, 7: 0}
    assert set(womens.meta["arm_rates"]) == {"Womens E-Mail", "No E-Mail"}


def test_extra_columns_are_ignored(tmp_path):
    lines = [line + ",x" for line in LINES]
    d = load_source("hillstrom", path=write_csv(tmp_path, lines, HEADER + ",note"))
    assert "note" not in d.customers.columns and len(d.customers) == 8


def test_views(tmp_path):
    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.views import build_view

    rng = np.random.default_rng(0)
    lines = [LINES[i % len(LINES)].replace(",0,0,0", f",{int(rng.random() < 0.4)},0,0") for i in range(90)]
    d = load_source("hillstrom", path=write_csv(tmp_path, lines))
    customer = build_view("customer", d)
    assert set(hs.CATEGORICAL) <= set(customer.categorical) and {"recency", "history"} <= set(customer.numeric)
    response = build_view("response", d)
    assert response.frame["incentive"].tolist() == d.exposures["incentive"].astype(np.float32).tolist()
    assert response.frame["purchased"].tolist() == d.outcomes["purchased"].astype(np.float32).tolist()
    dm = PromoDataModule(response, batch_size=16, seed=0)
    dm.setup()
    assert dm.spec.treatment.levels == (0.0, 1.0)
    assert next(iter(dm.train_dataloader()))["propensity"].unique().tolist() == pytest.approx([1 / 3, 2 / 3])


# ---------------------------------------------------------------- bad input: each a clear error


def test_path_not_set():
    with pytest.raises(DataValidationError, match=r"option path is not set.*data\.options\.path.*never downloaded"):
        load_source("hillstrom")


def test_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match=r"nope.csv' \(option path\) does not exist"):
        load_source("hillstrom", path=str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("old, new, match", [
    (",conversion,spend", ",spend", r"lacks column\(s\) \['conversion'\]"),
    ("recency,history_segment", "months,segment_of_history", r"lacks column\(s\) \['recency', 'history_segment'\]"),
])
def test_missing_columns(tmp_path, old, new, match):
    lines = [",".join(line.split(",")[:-2] + line.split(",")[-1:]) for line in LINES] if "conversion" in old else LINES
    with pytest.raises(DataValidationError, match=match):
        load_source("hillstrom", path=write_csv(tmp_path, lines, HEADER.replace(old, new)))


@pytest.mark.parametrize("old, new, match", [
    ("Phone,No E-Mail", "Phone,Kids E-Mail", r"column 'segment' has unknown arm\(s\) \['Kids E-Mail'\]"),
    ("No E-Mail,1,0,0", "No E-Mail,2,0,0", r"column 'visit' must be binary .*\[2.0\]"),
    ("134.83", "lots", r"column 'history' of 'mail.csv' must be numeric.*'lots' \(row 5\)"),
    ("34.5", "-34.5", r"column 'spend' has 1 negative value\(s\), e.g. -34.5 \(row 3\)"),
    ("134.83", "", r"column 'history' has 1 missing/NaN value\(s\), first at row\(s\) \[5\]"),
])
def test_bad_values(tmp_path, old, new, match):
    lines = [line.replace(old, new) for line in LINES]
    assert lines != LINES
    with pytest.raises(DataValidationError, match=match):
        load_source("hillstrom", path=write_csv(tmp_path, lines))


def test_bad_options(csv):
    with pytest.raises(ValueError, match="treatment_arm"):
        load_source("hillstrom", path=csv, treatment_arm="kids")
    with pytest.raises(ValueError, match="outcome"):
        load_source("hillstrom", path=csv, outcome="spend")


# ---------------------------------------------------------------- the real file (optional, slow)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FILE.is_file(), reason=f"{REAL_FILE} is not there")
def test_real_file_arm_rates():
    d = load_source("hillstrom", path=str(REAL_FILE))
    assert d.meta["counts"]["rows"] == 64000
    rates = d.meta["arm_rates"]
    # observed rates given in ../shared/data/README.md (visit / conversion / mean spend)
    expected = {"Mens E-Mail": (0.183, 0.0125, 1.42), "Womens E-Mail": (0.151, 0.0088, 1.08),
                "No E-Mail": (0.106, 0.0057, 0.65)}
    for arm, (visit, conversion, spend) in expected.items():
        assert rates[arm]["visit"] == pytest.approx(visit, abs=5e-4)
        assert rates[arm]["conversion"] == pytest.approx(conversion, abs=5e-5)
        assert rates[arm]["spend"] == pytest.approx(spend, abs=5e-3)
    assert d.exposures["treatment"].mean() == pytest.approx(2 / 3, abs=0.01)
    mens = load_source("hillstrom", path=str(REAL_FILE), treatment_arm="mens", outcome="conversion")
    treated = mens.exposures["treatment"].to_numpy() == 1
    bought = mens.outcomes["purchased"].to_numpy()
    assert bought[treated].mean() == pytest.approx(0.0125, abs=5e-5)
    assert bought[~treated].mean() == pytest.approx(0.0057, abs=5e-5)
