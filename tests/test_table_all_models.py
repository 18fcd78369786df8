"""Issue contract: every registered model trains from ``data=table`` on CSV files it has never seen, given only
column roles (the files are a synthetic world written out under other column names)."""

import numpy as np
import pytest
import pytorch_lightning as pl

import deepromo
from deepromo.data.sources import load_source
from deepromo.tasks import model_datamodule
from deepromo.models.registry import get_model_class


@pytest.fixture(scope="module")
def table_files(tmp_path_factory):
    from deepromo.data.sources.synthetic import generate_world

    world = generate_world(n_customers=800, seed=3)
    d = tmp_path_factory.mktemp("table")
    ex = world.exposures.drop_duplicates("customer_id", keep="last")
    rows = (world.customers.merge(ex, on="customer_id").merge(world.outcomes, on="customer_id")
            .rename(columns={"customer_id": "shopper", "purchased": "bought", "incentive": "coupon_value",
                             "engaged": "opened", "offer_id": "coupon", "ts": "sent_day", "revenue": "spend"}))
    rows = rows[["shopper", "age_band", "region", "membership", "device", "tenure_days", "sent_day", "coupon_value",
                 "opened", "coupon", "bought", "spend"]]
    rows.to_csv(d / "shoppers.csv", index=False)
    world.events.rename(columns={"customer_id": "shopper", "ts": "day"}).to_csv(d / "events.csv", index=False)
    world.offers.to_csv(d / "offers.csv", index=False)
    world.products.to_csv(d / "products.csv", index=False)
    options = dict(path=str(d / "shoppers.csv"), id="shopper", label="bought", treatment="coupon_value",
                   numeric=["tenure_days"], categorical=["age_band", "region", "membership", "device"],
                   time="sent_day", engaged="opened", offer="coupon", revenue="spend",
                   events_path=str(d / "events.csv"), events_columns={"customer_id": "shopper", "ts": "day"},
                   offers_path=str(d / "offers.csv"), products_path=str(d / "products.csv"))
    return d, options


@pytest.mark.parametrize("name", deepromo.list_models())
def test_every_model_trains_on_the_table_source(name, table_files):
    _, options = table_files
    data = load_source("table", **options)
    cls = get_model_class(name)
    pl.seed_everything(0, verbose=False)
    dm = model_datamodule(cls, data, batch_size=128, seed=0, params=cls.test_params[0])
    model = cls.from_datamodule(dm, **cls.test_params[0])
    pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False).fit(model, datamodule=dm)
    out = model.predict_split(dm, "test")
    assert out and all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in out.values())


def test_train_py_job_on_a_csv(table_files, tmp_path):
    from deepromo.jobs.config import compose_train_config
    from deepromo.jobs.train import run

    d, options = table_files
    overrides = ["data=table", "model=splc", "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false",
                 f"paths.output_dir={tmp_path / 'run'}"]
    for key, value in options.items():
        if isinstance(value, list):
            overrides.append(f"data.{key}=[{','.join(value)}]")
        elif isinstance(value, dict):
            overrides.append(f"data.{key}={{{','.join(f'{k}:{v}' for k, v in value.items())}}}")
        else:
            overrides.append(f"data.{key}={value}")  # the short form; data.options.<key> works too
    results = run(compose_train_config(overrides))
    assert results["data"] == "table" and "splc" in results["test"]
    assert 0.0 <= results["test"]["splc"]["auc"] <= 1.0
