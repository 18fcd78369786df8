"""Bad input to the MLflow pyfunc is an HTTP-400 MlflowException naming the column, not a generic error; and the
start/stop code of ``deepromo.serving.servers`` (readiness, early exit, time-out, process group, taken port).

No MLflow server here: the pyfunc is called directly and through the scoring server's own request handler
(``mlflow.pyfunc.scoring_server.invocations``), the start/stop code runs stand-in Python processes;
tests/test_served_models.py (slow) does both with the real servers over HTTP.
"""

import json

import numpy as np
import pandas as pd
import pytest

from deepromo.data.errors import UserInputError

from conftest import tiny_splc


@pytest.fixture(scope="module")
def splc_frame(tiny_world):
    """(untrained tiny splc with its preprocessor, 8 rows of its raw input columns as MLflow signatures type them)."""
    from deepromo.serving.mlflow_model import plain_columns

    model, dm = tiny_splc(tiny_world, epochs=0)
    frame = plain_columns(dm.view.frame.head(8)[model.preprocessor.columns]).reset_index(drop=True)
    return model.eval(), frame


def bad_frames(model, frame) -> dict[str, tuple[pd.DataFrame, str]]:
    """{case: (frame, the column its error must name)}: input that only deepromo itself refuses."""
    numeric, categorical = model.preprocessor.numeric[0], model.preprocessor.categorical[0]
    missing = frame.drop(columns=[numeric])
    not_finite = frame.copy()
    not_finite.loc[2, numeric] = np.nan
    huge = frame.copy()
    huge.loc[1, numeric] = 1e300
    listed = frame.copy()
    listed[categorical] = listed[categorical].astype(object)
    listed.at[0, categorical] = ["a", "b"]
    return {"missing column": (missing, numeric), "NaN": (not_finite, numeric), "1e300": (huge, numeric),
            "list in a categorical": (listed, categorical)}


@pytest.mark.parametrize("case", ["missing column", "NaN", "1e300", "list in a categorical"])
def test_bad_input_is_invalid_parameter_value_naming_the_column(splc_frame, case):
    from mlflow.exceptions import MlflowException

    from deepromo.serving.mlflow_model import DeepromoPyfunc

    model, frame = splc_frame
    pyfunc = DeepromoPyfunc()
    pyfunc.model = model  # what load_context sets from the logged checkpoint
    bad, column = bad_frames(model, frame)[case]
    with pytest.raises(MlflowException) as caught:
        pyfunc.predict(None, bad)
    err = caught.value
    assert err.error_code == "INVALID_PARAMETER_VALUE" and err.get_http_status_code() == 400
    assert f"'{column}'" in err.message and err.message.startswith("deepromo model 'splc': ")
    assert isinstance(err, UserInputError)  # callers in the same process still catch deepromo's own error
    assert isinstance(err.__cause__, UserInputError)


def test_good_input_scores_as_predict_frame(splc_frame):
    from deepromo.serving.mlflow_model import DeepromoPyfunc

    model, frame = splc_frame
    pyfunc = DeepromoPyfunc()
    pyfunc.model = model
    pd.testing.assert_frame_equal(pyfunc.predict(None, frame), model.predict_frame(frame))


def test_scoring_server_handler_answers_400_with_the_message(splc_frame, tmp_path, mlflow_store):
    """The request handler behind ``/invocations`` on a logged model: a value only deepromo refuses and one the
    signature refuses both come back as 400 with the column named; good rows score as predict_frame does."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from deepromo.serving import mlflow_model

    model, frame = splc_frame
    checkpoint = tmp_path / "model.ckpt"
    model.save(checkpoint)
    info = mlflow_model.log_model(model, checkpoint, frame.head(3))
    scorer = mlflow.pyfunc.load_model(info.model_uri)
    schema = scorer.metadata.get_input_schema()
    numeric = model.preprocessor.numeric[0]

    def invoke(records: list[dict]):
        body = json.dumps({"dataframe_records": records})
        return scoring_server.invocations(body, "application/json", scorer, schema)

    records = json.loads(frame.to_json(orient="records"))
    answer = invoke(records)
    assert answer.status == 200
    served = pd.DataFrame(json.loads(answer.response)["predictions"])
    np.testing.assert_allclose(served["score"], model.predict_frame(frame)["score"], rtol=1e-6)
    for value, says in ((1e300, "float32"), ("lots", "could not convert string to float: 'lots'")):
        bad = [dict(row) for row in records]
        bad[0][numeric] = value
        with pytest.raises(MlflowException) as caught:
            invoke(bad)
        assert caught.value.get_http_status_code() == 400
        assert numeric in caught.value.message and says in caught.value.message
        payload = json.loads(caught.value.serialize_as_json())  # the body the server sends
        assert payload["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST") and numeric in payload["message"]


# --- the start/stop code of deepromo.serving.servers, on stand-in Python processes (no MLflow server) ---


def is_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_server_waits_for_health_then_stops_its_whole_process_group(tmp_path):
    import sys
    import time

    from deepromo.serving.servers import free_port, is_ready, running

    port, pid_file = free_port(), tmp_path / "worker.pid"
    server = ("import http.server, subprocess, sys, time\n"
              "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(worker.pid))\n"
              "time.sleep(1)  # not ready at once: the caller has to wait\n"
              f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)"
              ".serve_forever()\n")
    health = f"http://127.0.0.1:{port}/"
    with running([sys.executable, "-c", server], health, tmp_path / "server.log", "stand-in server"):
        assert is_ready(health)
        worker = int(pid_file.read_text())
        assert is_alive(worker)
    assert not is_ready(health)
    deadline = time.monotonic() + 10
    while is_alive(worker) and time.monotonic() < deadline:  # killed with its group; init reaps it
        time.sleep(0.1)
    assert not is_alive(worker)


def test_server_that_exits_early_is_an_error_with_its_log_tail(tmp_path):
    import sys

    from deepromo.serving.servers import ServerError, free_port, running

    crash = "import sys; print('address already in use', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ServerError, match=r"(?s)stand-in server exited with code 3 before it was ready.*address "
                                          "already in use"):
        with running([sys.executable, "-c", crash], f"http://127.0.0.1:{free_port()}/", tmp_path / "server.log",
                     "stand-in server"):
            pass


def test_server_never_ready_times_out_and_is_stopped(tmp_path):
    import sys

    from deepromo.serving.servers import ServerError, free_port, running

    pid_file = tmp_path / "server.pid"
    hang = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('loading'); time.sleep(120)"
    with pytest.raises(ServerError, match=r"(?s)did not answer .* within 2 s.*loading"):
        with running([sys.executable, "-u", "-c", hang], f"http://127.0.0.1:{free_port()}/", tmp_path / "server.log",
                     "stand-in server", startup_timeout=2):
            pass
    assert not is_alive(int(pid_file.read_text()))


def test_missing_mlflow_command_is_one_line(tmp_path, monkeypatch):
    import sys

    from deepromo.serving.servers import ServerError, mlflow_command

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerError, match=r"^the 'mlflow' command is missing \(not in .*bin nor on PATH\): pip "
                                          "install mlflow into this environment$"):
        mlflow_command()


def test_a_taken_port_is_refused_before_anything_starts():
    import socket

    from deepromo.serving.servers import ServerError, free_port, require_free_port

    port = free_port()
    assert require_free_port(port) == port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(ServerError, match=rf"^port {port} on 127.0.0.1 is not free"):
            require_free_port(port)
