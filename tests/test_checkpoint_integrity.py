"""Checkpoints prove their integrity: a damaged, foreign or mismatched file never loads, and says why in one line."""

import json

import numpy as np
import pytest
import torch

import deepromo
from deepromo.models.base import CHECKPOINT_KEY, HASH_KEY
from deepromo.serving.checkpoints import CheckpointError

from conftest import tiny_splc


@pytest.fixture(scope="module")
def saved(tiny_world, tmp_path_factory):
    model, dm = tiny_splc(tiny_world, epochs=0)
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    model.save(path)
    return model, path


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def rewritten(path, target, **changes):
    """A copy of checkpoint ``path`` at ``target`` with its metadata entries changed and its hash dropped (so the
    load gets past the integrity check to the problem under test)."""
    ckpt = torch.load(path, weights_only=True)
    ckpt[CHECKPOINT_KEY] = {k: v for k, v in {**ckpt[CHECKPOINT_KEY], **changes}.items() if k != HASH_KEY}
    torch.save(ckpt, target)
    return target


def one_line(exc) -> str:
    message = str(exc.value)
    assert "\n" not in message and "weights_only=False" not in message and "Errno" not in message, message
    return message


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"not a checkpoint at all", "not a torch checkpoint archive"),
    (bytes(range(256)) * 40, "not a torch checkpoint archive"),
])
def test_empty_or_random_files_are_refused(tmp_path, content, expected):
    path = write(tmp_path / "bad.ckpt", content)
    with pytest.raises(CheckpointError) as exc:
        deepromo.load_model(path)
    assert expected in one_line(exc) and str(path) in str(exc.value)


def test_truncated_files_are_refused(saved, tmp_path):
    raw = saved[1].read_bytes()
    for cut in (10, len(raw) // 3, len(raw) - 30):
        with pytest.raises(CheckpointError) as exc:
            deepromo.load_model(write(tmp_path / f"cut{cut}.ckpt", raw[:cut]))
        one_line(exc)


def test_a_flipped_byte_never_loads_changed_weights(saved, tmp_path):
    model, path = saved
    raw = path.read_bytes()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    refused = 0
    for offset in np.linspace(0, len(raw) - 1, 60).astype(int):
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        try:
            loaded = deepromo.load_model(write(tmp_path / "flip.ckpt", bytes(damaged)))
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        for key, value in loaded.state_dict().items():  # what loads is exactly what was saved
            assert torch.equal(value, reference[key]), (offset, key)
    assert refused >= 30


def test_changed_weights_with_a_valid_archive_fail_the_content_hash(saved, tmp_path):
    _, path = saved
    ckpt = torch.load(path, weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1.0
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    with pytest.raises(CheckpointError, match="content hash does not match") as exc:
        deepromo.load_model(tmp_path / "tampered.ckpt")
    one_line(exc)


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    ran = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    torch.save({CHECKPOINT_KEY: {}, "state_dict": {}, "payload": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="Python objects") as exc:
        deepromo.load_model(tmp_path / "evil.ckpt")
    one_line(exc)
    assert not ran.exists()


def test_weights_of_another_shape_or_model_are_refused(saved, tmp_path, tiny_world):
    model, path = saved
    hparams = {**torch.load(path, weights_only=True)[CHECKPOINT_KEY]["hparams"], "hidden": 16}  # the weights have 8
    with pytest.raises(CheckpointError, match="do not fit model 'splc'") as exc:
        deepromo.load_model(rewritten(path, tmp_path / "shape.ckpt", hparams=hparams))
    one_line(exc)
    with pytest.raises(CheckpointError, match="cannot be rebuilt|do not fit") as exc:
        deepromo.load_model(rewritten(path, tmp_path / "other.ckpt", model="dipn"))
    one_line(exc)


def test_a_bad_preprocessor_json_is_named(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="preprocessor is unreadable") as exc:
        deepromo.load_model(rewritten(path, tmp_path / "prep.ckpt", preprocessor="{not json"))
    one_line(exc)


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        deepromo.load_model(tmp_path)


def test_lightning_checkpoints_carry_the_hash_too(saved, tmp_path, tiny_world):
    import pytorch_lightning as pl

    model, dm = tiny_splc(tiny_world, epochs=0)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "trainer.ckpt")
    assert HASH_KEY in torch.load(tmp_path / "trainer.ckpt", weights_only=True)[CHECKPOINT_KEY]
    deepromo.load_model(tmp_path / "trainer.ckpt")


def test_an_mlflow_model_whose_code_file_changed_is_refused(saved, tiny_world, mlflow_store):
    from pathlib import Path

    import mlflow

    from deepromo.data.views import build_view
    from deepromo.serving import mlflow_model

    model, path = saved
    example = mlflow_model.input_example(model, build_view("customer", tiny_world))
    info = mlflow_model.log_model(model, path, example)
    scored = mlflow_model.load_pyfunc(info.model_uri).predict(example)
    assert len(scored) == len(example)
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri)
    code = next(Path(local).rglob("pyfunc_entry.py"))
    code.write_text(code.read_text() + "\nprint('someone else')\n")
    with pytest.raises(CheckpointError, match="code file pyfunc_entry.py is missing or changed"):
        mlflow_model.verify_pyfunc_code(local)
    assert json.loads(json.dumps(info.metadata))["deepromo_code_sha256"]
