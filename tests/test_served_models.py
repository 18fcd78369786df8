"""Served models over loopback HTTP: a real MLflow tracking server as the registry, and ``mlflow models serve``.

Both servers are started and stopped by deepromo's own ``deepromo.serving.servers``. The tracking server holds
the runs, the registry and (proxied) the artifacts; the train job logs to it through ``MLFLOW_TRACKING_URI``.
MLServer's MLflow runtime is not tested: it pins fastapi<0.116 and protobuf<7, which would downgrade this
project's fastapi, starlette and protobuf (docs/serving.md).
"""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pandas as pd
import pytest

import deepromo
from deepromo.jobs.train import run

from conftest import compose_config

pytestmark = pytest.mark.slow

NAME = "deepromo-splc-synthetic"
URI = f"models:/{NAME}@champion"


def require_mlflow_cli() -> None:
    """Fail (never skip) with one line when this environment has no ``mlflow`` command."""
    from deepromo.serving.servers import ServerError, mlflow_command

    try:
        mlflow_command()
        missing = None
    except ServerError as exc:
        missing = str(exc)
    if missing:  # outside the except block: one line, without the chained ServerError
        pytest.fail(f"needs the mlflow CLI: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    """A tracking server under a temporary root, and train.py's job registering splc into it as @champion."""
    import mlflow

    from deepromo.serving.servers import tracking_server

    require_mlflow_cli()
    tmp = tmp_path_factory.mktemp("served")
    mp = pytest.MonkeyPatch()
    with tracking_server(tmp / "server") as url:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        cfg = compose_config(["logger=mlflow", f"logger.tracking_uri={url}", "registry.register=true",
                              "registry.alias=champion", "trainer.max_epochs=1", "~model.baselines"], tmp / "run")
        results = run(cfg)
        yield {"url": url, "root": tmp / "server", "results": results}
    mp.undo()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def rows(tiny_world):
    """20 customers of the tiny synthetic world (the customer view's raw columns)."""
    from deepromo.data.views import build_view

    return build_view("customer", tiny_world).frame.head(20)


@pytest.fixture(scope="module")
def checkpoint_scores(registry_server, rows):
    """(model rebuilt from the run's own checkpoint, its input rows as plain columns, its predict_frame on them)."""
    from deepromo.serving.mlflow_model import plain_columns

    model = deepromo.load_model(registry_server["results"]["model_path"])
    frame = plain_columns(rows[model.input_columns()]).reset_index(drop=True)
    return model, frame, model.predict_frame(frame)


def test_tracking_server_registers_aliases_and_serves_artifacts(registry_server, checkpoint_scores):
    import mlflow
    from mlflow.tracking import MlflowClient

    from deepromo.serving.mlflow_model import set_alias

    url, root, results = registry_server["url"], registry_server["root"], registry_server["results"]
    client = MlflowClient(url)
    assert results["registered"]["version"] == 1
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    run_id = client.get_model_version(NAME, "1").run_id
    assert client.get_experiment(client.get_run(run_id).info.experiment_id).artifact_location.startswith(
        "mlflow-artifacts:")  # the client only knows the URL: artifacts go through the server ...
    assert list((root / "artifacts").rglob("model.ckpt"))  # ... into its artifact root on disk
    set_alias(NAME, "production", 1)
    assert client.get_model_version_by_alias(NAME, "production").version == "1"

    model, frame, expected = checkpoint_scores
    by_alias = deepromo.load_model(URI)
    assert type(by_alias) is type(model)
    pd.testing.assert_frame_equal(by_alias.predict_frame(frame), expected)
    scorer = mlflow.pyfunc.load_model(URI)
    pd.testing.assert_frame_equal(scorer.predict(frame), expected, check_exact=False, rtol=1e-6)


@pytest.fixture(scope="module")
def served(registry_server):
    """``mlflow models serve`` of models:/…@champion, fetched from the tracking server: its /invocations URL."""
    from deepromo.serving.servers import model_server

    with model_server(URI) as url:
        yield f"{url}/invocations"


def post(url: str, body: bytes | str, content_type: str = "application/json") -> tuple[int, str]:
    """(HTTP status, body text) of a POST; no proxy (loopback)."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def served_scores(text: str) -> pd.DataFrame:
    return pd.DataFrame(json.loads(text)["predictions"])


def test_model_server_scores_split_and_records_like_predict_frame(served, checkpoint_scores):
    _, frame, expected = checkpoint_scores
    split = json.loads(frame.to_json(orient="split", index=False))
    status, text = post(served, json.dumps({"dataframe_split": split}))
    assert status == 200, text
    pd.testing.assert_frame_equal(served_scores(text), expected, check_exact=False, rtol=1e-6, check_dtype=False)
    records = json.loads(frame.to_json(orient="records"))
    status, text = post(served, json.dumps({"dataframe_records": records}))
    assert status == 200, text
    pd.testing.assert_frame_equal(served_scores(text), expected, check_exact=False, rtol=1e-6, check_dtype=False)
    assert (served_scores(text).columns == ["p_inactive", "p_unengaged", "p_engaged", "p_active", "p_prompted",
                                            "score", "pred_prompted"]).all()


def bad_payloads(model, frame: pd.DataFrame) -> dict[str, tuple[str, str, list[str]]]:
    """{case: (body, content type, fragments its error message must hold)}."""
    numeric, categorical = model.preprocessor.numeric[0], model.preprocessor.categorical[0]
    records = json.loads(frame.head(3).to_json(orient="records"))

    def with_value(value, column: str = numeric) -> str:
        changed = [dict(row) for row in records]
        changed[1][column] = value
        return json.dumps({"dataframe_records": changed})

    missing = json.dumps({"dataframe_records": [{k: v for k, v in row.items() if k != numeric} for row in records]})
    json_type = "application/json"
    return {
        "missing feature column": (missing, json_type, [f"missing inputs ['{numeric}']"]),
        "text in a numeric column": (with_value("lots"), json_type, [f"column {numeric}", "'lots'"]),
        "number beyond float32": (with_value(1e300), json_type, [f"deepromo model 'splc': column '{numeric}'",
                                                                 "float32"]),
        "null in a numeric column": (with_value(None), json_type, [f"column '{numeric}'", "NaN"]),
        "list in a categorical column": (with_value(["a", "b"], categorical), json_type,
                                         [f"deepromo model 'splc': column '{categorical}' holds list values"]),
        "malformed JSON": ('{"dataframe_records": [{"a": 1}', json_type, ["valid JSON"]),
        "empty body": ("", json_type, ["valid JSON"]),
        "records not a list": (json.dumps({"dataframe_records": 5}), json_type, ["must be a list of records"]),
        "unknown columns only": (json.dumps({"dataframe_records": [{"colour": "red"}]}), json_type,
                                 ["missing inputs", "extra inputs: ['colour']"]),
        "no format key": (json.dumps({"rows": records}), json_type, ["dataframe_split"]),
        "unsupported content type": (with_value(1.0), "text/plain", ["content types"]),
    }


def test_bad_payloads_get_4xx_with_a_message_naming_the_problem(served, checkpoint_scores):
    model, frame, _ = checkpoint_scores
    for case, (body, content_type, fragments) in bad_payloads(model, frame).items():
        status, text = post(served, body, content_type)
        assert 400 <= status < 500, f"{case}: HTTP {status}: {text[:300]}"
        message = json.loads(text)["message"] if content_type == "application/json" else text
        for fragment in fragments:
            assert fragment in message, f"{case}: {fragment!r} not in {message[-400:]!r}"
    status, text = post(served, json.dumps({"dataframe_records": json.loads(frame.head(2).to_json(orient="records"))}))
    assert status == 200, text  # the server still answers after the bad requests


def test_cli_starts_and_stops_a_tracking_server(tmp_path):
    """``python -m deepromo.serving.servers tracking`` prints its URL, answers /health, stops on SIGTERM."""
    from deepromo.serving.servers import free_port, is_ready

    require_mlflow_cli()
    port = free_port()
    cli = subprocess.Popen([sys.executable, "-m", "deepromo.serving.servers", "tracking", "--root", str(tmp_path),
                            "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        line = cli.stdout.readline()  # printed once the server answers its health check
        assert line.strip() == f"tracking server at http://127.0.0.1:{port} (Ctrl-C stops it)", cli.stderr.read()
        assert is_ready(f"http://127.0.0.1:{port}/health")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 0
        assert not is_ready(f"http://127.0.0.1:{port}/health")  # the server went with it
        assert (tmp_path / "mlflow.db").exists() and (tmp_path / "server.log").exists()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
