"""A corpus of bad inputs across data, config, scoring, checkpoints and streaming.

Every case ends in one clear line (exit code 2 on the command line) that names the offending column, key, file
or value, and writes no output; an output that existed before survives unchanged.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import deepromo
from deepromo.data.errors import UserInputError
from deepromo.jobs.cli import main_guard

from conftest import ROOT, compose_config, tiny_job, tiny_splc

sys.path.insert(0, str(ROOT))
from predict import main as predict_main  # noqa: E402

SENTINEL = b"an earlier output that must survive"


def refused(capsys, fn, *args) -> str:
    """Run ``fn(*args)`` as a command-line entry does; it must exit 2 with one line on stderr: that line."""
    with pytest.raises(SystemExit) as exc:
        main_guard(fn, *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def scoring(tiny_world, tmp_path_factory):
    """A trained tiny splc checkpoint, its raw test rows and a folder for inputs."""
    model, dm = tiny_splc(tiny_world)
    folder = tmp_path_factory.mktemp("corpus")
    model.save(folder / "model.ckpt")
    columns = ["customer_id", *dm.preprocessor.columns]
    frame = dm.view.frame.iloc[dm.indices["test"]][columns].reset_index(drop=True).head(60)
    frame[dm.preprocessor.categorical] = frame[dm.preprocessor.categorical].astype(str)
    return {"ckpt": folder / "model.ckpt", "frame": frame, "dir": folder, "model": model}


def with_column(frame, column, value):
    out = frame.copy()
    out[column] = value
    return out


def at_row(frame, column, row, value):
    out = frame.copy().astype({column: object})
    out.loc[row, column] = value
    return out


# (case id, how to make the input frame from the good one, file suffix, words the message must contain)
SCORING_FRAMES = [
    ("missing numeric column", lambda f: f.drop(columns="tenure_days"), ".csv", ["tenure_days"]),
    ("missing categorical column", lambda f: f.drop(columns="region"), ".parquet", ["region"]),
    ("two missing columns", lambda f: f.drop(columns=["region", "frequency"]), ".csv", ["region", "frequency"]),
    ("text in a numeric column", lambda f: at_row(f, "tenure_days", 7, "lots"), ".csv", ["tenure_days", "lots"]),
    ("text everywhere in a numeric column", lambda f: with_column(f, "monetary", "n/a"), ".csv", ["monetary"]),
    ("1e40 in a numeric column", lambda f: with_column(f, "tenure_days", 1e40), ".parquet", ["tenure_days", "float32"]),
    ("1e40 in one row", lambda f: at_row(f, "tenure_days", 5, 1e40), ".csv", ["tenure_days", "row"]),
    ("timestamps in a numeric column", lambda f: with_column(f, "tenure_days", pd.Timestamp("2024-01-01")),
     ".parquet", ["tenure_days", "timestamps"]),
    ("durations in a numeric column", lambda f: with_column(f, "tenure_days", pd.Timedelta("3D")), ".parquet",
     ["tenure_days", "durations"]),
    ("NaN in a numeric column", lambda f: at_row(f, "recency_days", 3, np.nan), ".parquet", ["recency_days", "NaN"]),
    ("inf in a numeric column", lambda f: at_row(f, "recency_days", 4, np.inf), ".parquet", ["recency_days"]),
    ("negative count in a log column", lambda f: at_row(f, "frequency", 2, -5.0), ".parquet", ["frequency", "negative"]),
    ("booleans as text", lambda f: with_column(f, "tenure_days", "yes"), ".csv", ["tenure_days"]),
]


@pytest.mark.parametrize("case, make, suffix, words", SCORING_FRAMES, ids=[c[0] for c in SCORING_FRAMES])
def test_scoring_refuses_bad_rows(scoring, tmp_path, capsys, case, make, suffix, words):
    source = tmp_path / f"rows{suffix}"
    frame = make(scoring["frame"])
    frame.to_parquet(source, index=False) if suffix == ".parquet" else frame.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    out.write_bytes(SENTINEL)
    err = refused(capsys, predict_main, ["--model", str(scoring["ckpt"]), "--input", str(source), "--output",
                                         str(out), "--no-progress"])
    for word in words:
        assert word in err, (case, err)
    assert out.read_bytes() == SENTINEL
    assert not list(tmp_path.glob(".*.tmp"))


def write_text(path, text: str, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


SCORING_FILES = [
    ("excel file", lambda d, f: write_text(d / "rows.xlsx", "x"), [], ["rows.xlsx", ".xlsx"]),
    ("json file", lambda d, f: write_text(d / "rows.json", "{}"), [], [".json"]),
    ("no such file", lambda d, f: d / "missing.csv", [], ["missing.csv"]),
    ("empty csv", lambda d, f: write_text(d / "rows.csv", ""), [], ["rows.csv", "empty"]),
    ("garbage parquet", lambda d, f: write_text(d / "rows.parquet", "not parquet"), [], ["rows.parquet"]),
    ("duplicate header", lambda d, f: write_text(d / "rows.csv", "customer_id,region,region\n1,a,b\n"), [],
     ["region", "more than once"]),
    ("latin-1 text", lambda d, f: f.assign(region="café").to_csv(d / "rows.csv", index=False, encoding="latin-1")
     or d / "rows.csv", [], ["region", "encoding"]),
    ("unknown encoding", lambda d, f: f.to_csv(d / "rows.csv", index=False) or d / "rows.csv",
     ["--encoding", "klingon"], ["klingon"]),
    ("zero chunk size", lambda d, f: f.to_csv(d / "rows.csv", index=False) or d / "rows.csv",
     ["--chunk-size", "0"], ["chunk_size"]),
    ("output is csv", lambda d, f: f.to_csv(d / "rows.csv", index=False) or d / "rows.csv",
     ["--output", "OUT.csv"], ["Parquet"]),
    ("kept column clashes with a score", lambda d, f: f.assign(score=1.0).to_csv(d / "rows.csv", index=False)
     or d / "rows.csv", ["--keep-column", "score"], ["score", "clash"]),
    ("unknown id column", lambda d, f: f.to_csv(d / "rows.csv", index=False) or d / "rows.csv",
     ["--id-column", "user"], ["user"]),
]


@pytest.mark.parametrize("case, make, extra, words", SCORING_FILES, ids=[c[0] for c in SCORING_FILES])
def test_scoring_refuses_bad_files_and_options(scoring, tmp_path, capsys, case, make, extra, words):
    source = make(tmp_path, scoring["frame"])
    out = tmp_path / "scores.parquet"
    out.write_bytes(SENTINEL)
    extra = [str(tmp_path / "scores.csv") if a == "OUT.csv" else a for a in extra]
    args = ["--model", str(scoring["ckpt"]), "--input", str(source), "--output", str(out), "--no-progress", *extra]
    err = refused(capsys, predict_main, args)
    for word in words:
        assert word in err, (case, err)
    assert out.read_bytes() == SENTINEL and not (tmp_path / "scores.csv").exists()


def test_output_equal_to_input_is_refused_and_the_input_survives(scoring, tmp_path, capsys):
    source = tmp_path / "rows.parquet"
    scoring["frame"].to_parquet(source, index=False)
    before = source.read_bytes()
    err = refused(capsys, predict_main, ["--model", str(scoring["ckpt"]), "--input", str(source), "--output",
                                         str(source), "--no-progress"])
    assert "is the input file" in err and source.read_bytes() == before


def damaged(path, kind: str):
    raw = path.read_bytes()
    return {"empty": b"", "truncated": raw[: len(raw) // 2], "random": bytes(range(256)) * 20,
            "text": b"hello"}[kind]


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "text"])
def test_scoring_with_a_damaged_checkpoint(scoring, tmp_path, capsys, kind):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(damaged(scoring["ckpt"], kind))
    source = tmp_path / "rows.parquet"
    scoring["frame"].to_parquet(source, index=False)
    out = tmp_path / "scores.parquet"
    err = refused(capsys, predict_main, ["--model", str(bad), "--input", str(source), "--output", str(out)])
    assert str(bad) in err and not out.exists()


@pytest.mark.parametrize("model", ["missing.ckpt", "models:/no-such-model@champion", "models:/no-such-model/3",
                                   "runs:/0123456789abcdef/model"])
def test_scoring_with_a_model_that_is_not_there(scoring, tmp_path, capsys, mlflow_store, model):
    source = tmp_path / "rows.parquet"
    scoring["frame"].to_parquet(source, index=False)
    target = str(tmp_path / model) if model.endswith(".ckpt") else model
    err = refused(capsys, predict_main, ["--model", target, "--input", str(source), "--output",
                                         str(tmp_path / "scores.parquet")])
    assert target in err and not (tmp_path / "scores.parquet").exists()


PREDICT_FRAME = [
    ("a numpy array", lambda f: f.to_numpy(), ["DataFrame", "ndarray"]),
    ("a dict", lambda f: f.to_dict(), ["DataFrame", "dict"]),
    ("a list", lambda f: f.to_dict("records"), ["DataFrame", "list"]),
    ("list-valued categories", lambda f: with_column(f, "region", [["north"]] * len(f)), ["region", "list"]),
    ("dict-valued categories", lambda f: with_column(f, "device", [{"a": 1}] * len(f)), ["device", "dict"]),
    ("complex numbers", lambda f: with_column(f, "tenure_days", 1 + 2j), ["tenure_days", "complex"]),
    ("a missing column", lambda f: f.drop(columns="membership"), ["membership"]),
]


@pytest.mark.parametrize("case, make, words", PREDICT_FRAME, ids=[c[0] for c in PREDICT_FRAME])
def test_predict_frame_says_what_it_expects(scoring, case, make, words):
    with pytest.raises(UserInputError) as exc:
        scoring["model"].predict_frame(make(scoring["frame"]))
    for word in words:
        assert word in str(exc.value), (case, str(exc.value))


TRAIN_CONFIGS = [
    ("zero epochs", ["trainer.max_epochs=0"], ["trainer.max_epochs"]),
    ("endless epochs", ["trainer.max_epochs=-1"], ["trainer.max_epochs=-1", "early_stopping"]),
    ("text epochs", ["trainer.max_epochs=many"], ["trainer.max_epochs"]),
    ("zero devices", ["trainer.devices=0"], ["trainer.devices"]),
    ("unknown accelerator", ["trainer.accelerator=abacus"], ["trainer.accelerator"]),
    ("zero batch size", ["data.batch_size=0"], ["data.batch_size"]),
    ("negative batch size", ["data.batch_size=-8"], ["data.batch_size"]),
    ("negative seed", ["seed=-1"], ["seed"]),
    ("text seed", ["seed=abc"], ["seed"]),
    ("text learning rate", ["model.params.lr=fast"], ["model.params.lr"]),
    ("negative learning rate", ["model.params.lr=-0.1"], ["model.params.lr"]),
    ("negative weight decay", ["model.params.weight_decay=-1"], ["model.params.weight_decay"]),
    ("text hidden size", ["model.params.hidden=big"], ["model.params.hidden"]),
    ("list where a number goes", ["model.params.tau=[1,2]"], ["model.params.tau"]),
    ("misspelt hyper-parameter", ["+model.params.hiden=3"], ["model.params.hiden", "hidden"]),
    ("tau out of range", ["model.params.tau=1.5"], ["tau"]),
    ("unknown correction", ["model.params.correction=both"], ["both"]),
    ("unknown model", ["model.name=nope"], ["nope"]),
    ("unknown source", ["data.source=nowhere"], ["nowhere"]),
    ("unknown logger", ["logger.kind=carrier-pigeon"], ["logger.kind"]),
    ("register without mlflow", ["registry.register=true", "logger=csv"], ["registry.register"]),
    ("register maybe", ["registry.register=maybe"], ["registry.register"]),
    ("unknown split", ["data.split=sideways"], ["sideways"]),
    ("view option the view does not take", ["+data.view_options.half_life_days=3"], ["half_life_days"]),
    ("unknown baseline", ["+model.baselines.crystal_ball={}"], ["crystal_ball"]),
    ("unknown postprocess", ["+model.baselines.mine={variant:{hidden:8},postprocess:smooth}"], ["smooth"]),
    ("variant with an unknown hyper-parameter", ["+model.baselines.mine={variant:{depth:3}}"], ["depth"]),
    ("resume from nowhere", ["resume=/no/such/run"], ["resume"]),
    ("world with no customers", ["data.options.n_customers=0"], ["n_customers"]),
    ("dipn direction", ["model=dipn", "model.params.direction=2"], ["direction"]),
    ("dipn knots not increasing", ["model=dipn", "model.params.knots=[5,1]"], ["knots"]),
    ("txl heads", ["model=txl", "model.params.d_model=10", "model.params.n_heads=3"], ["d_model=10"]),
    ("txl encoder", ["model=txl", "model.params.encoder=lstm"], ["encoder"]),
    ("gat split", ["model=gat", "data.split=stratified"], ["data.split", "offer_graph"]),
    ("gat conv", ["model=gat", "model.params.conv=gcn"], ["conv"]),
    ("gat fanout", ["model=gat", "model.params.fanout=[5]"], ["fanout"]),
]


@pytest.mark.parametrize("case, overrides, words", TRAIN_CONFIGS, ids=[c[0] for c in TRAIN_CONFIGS])
def test_training_refuses_settings_that_cannot_work(tmp_path, capsys, case, overrides, words):
    from deepromo.jobs.train import run

    cfg = compose_config(["~model.baselines", "+model.baselines={}", *overrides], tmp_path / "run")
    err = refused(capsys, run, cfg)
    for word in words:
        assert word in err, (case, err)
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "model.ckpt").exists()


@pytest.mark.parametrize("override", ["+trainer.foo=1", "+seeed=3", "+data.batchsize=4", "+model.paramz.lr=1"])
def test_added_keys_that_nothing_reads_are_refused(capsys, override):
    from deepromo.jobs.config import check_added_keys

    err = refused(capsys, check_added_keys, [override])
    assert override.split("=")[0] in err


def table_rows(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"cid": np.arange(n), "city": rng.choice(["paris", "lyon"], n),
                         "spend": rng.gamma(2.0, 10.0, n).round(2), "bought": rng.integers(0, 2, n),
                         "coupon": rng.integers(0, 2, n)})


TABLE_CASES = [
    ("no such file", lambda d, r: {"path": str(d / "missing.csv")}, ["missing.csv"]),
    ("excel file", lambda d, r: {"path": str(write_text(d / "rows.xlsx", "x"))}, [".xlsx"]),
    ("missing id column", lambda d, r: {"id": "user"}, ["user"]),
    ("missing label column", lambda d, r: {"label": "converted"}, ["converted"]),
    ("missing feature column", lambda d, r: {"numeric": ["spend", "income"]}, ["income"]),
    ("duplicate ids", lambda d, r: {"path": str(save(d, r.assign(cid=1)))}, ["cid", "duplicate"]),
    ("label not binary", lambda d, r: {"path": str(save(d, r.assign(bought=7)))}, ["bought"]),
    ("text in a numeric feature", lambda d, r: {"path": str(save(d, at_row(r, "spend", 3, "lots")))}, ["spend"]),
    ("empty file", lambda d, r: {"path": str(write_text(d / "rows.csv", ""))}, ["rows.csv", "empty"]),
    ("header only", lambda d, r: {"path": str(write_text(d / "rows.csv", "cid,city,spend,bought,coupon\n"))},
     ["rows.csv"]),
    ("duplicate header", lambda d, r: {"path": str(write_text(d / "rows.csv", "cid,spend,spend,bought\n1,2,3,1\n"))},
     ["spend", "more than once"]),
    ("latin-1 without encoding", lambda d, r: {"path": str(save(d, r.assign(city="café"), encoding="latin-1"))},
     ["city", "encoding"]),
    ("unknown encoding", lambda d, r: {"encoding": "klingon"}, ["klingon"]),
    ("unknown treatment type", lambda d, r: {"treatment": "coupon", "treatment_type": "fuzzy"}, ["fuzzy"]),
    ("unknown time unit", lambda d, r: {"time_unit": "fortnights"}, ["fortnights"]),
    ("zero response window", lambda d, r: {"response_days": 0}, ["response_days"]),
    ("events file without ts", lambda d, r: {"label": None, "events_path": str(
        save(d, pd.DataFrame({"cid": [1], "event_type": ["purchase"], "amount": [3.0]}), "events.csv"))}, ["ts"]),
]


def save(folder, frame, name="rows.csv", encoding="utf-8"):
    path = folder / name
    frame.to_csv(path, index=False, encoding=encoding)
    return path


@pytest.mark.parametrize("case, change, words", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_the_table_source_names_what_is_wrong(tmp_path, capsys, case, change, words):
    from deepromo.data.sources import load_source

    rows = table_rows()
    options = {"path": str(save(tmp_path, rows)), "id": "cid", "label": "bought", "numeric": ["spend"],
               "categorical": ["city"], **change(tmp_path, rows)}
    err = refused(capsys, lambda: load_source("table", **options))
    for word in words:
        assert word in err, (case, err)


@pytest.fixture(scope="module")
def streaming_scorer(tmp_path_factory):
    from deepromo.data.sources.synthetic import generate_world
    from deepromo.data.views import build_view
    from deepromo.models.txl.streaming import StreamingScorer

    _, out = tiny_job("txl", tmp_path_factory)
    model = deepromo.load_model(out / "model.ckpt")
    view = build_view("purchase", generate_world(n_customers=200, seed=5)).subset(np.arange(10))
    return StreamingScorer(model, customers=view.frame), view


STREAMING_CASES = [
    ("events of an unknown customer", lambda ev: ev.assign(customer_id=10**9), ["customer_id", "set_customers"]),
    ("events without ts", lambda ev: ev.drop(columns="ts"), ["ts"]),
    ("events without event_type", lambda ev: ev.drop(columns="event_type"), ["event_type"]),
    ("NaN amount", lambda ev: at_row(ev.reset_index(drop=True), "amount", 0, np.nan), ["amount"]),
    ("negative amount", lambda ev: ev.assign(amount=-3.0), ["amount"]),
    ("text timestamps", lambda ev: ev.assign(ts="yesterday"), ["ts"]),
]


@pytest.mark.parametrize("case, change, words", STREAMING_CASES, ids=[c[0] for c in STREAMING_CASES])
def test_the_streaming_scorer_refuses_bad_events_and_keeps_its_state(streaming_scorer, capsys, case, change, words):
    scorer, view = streaming_scorer
    before = {c: s.n_events for c, s in scorer.states.items()}
    err = refused(capsys, scorer.observe, change(view.sequences.events.head(20)))
    for word in words:
        assert word in err, (case, err)
    assert {c: s.n_events for c, s in scorer.states.items()} == before


def test_the_streaming_scorer_refuses_unknown_customers_when_scoring(streaming_scorer, capsys):
    scorer, _ = streaming_scorer
    err = refused(capsys, scorer.score, [10**9])
    assert str(10**9) in err
