"""One loop over every registered model and each of its test parameter sets: build from the datamodule, train
briefly, save, reload with weights_only, same predictions; and every model through the train.py job."""

import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import deepromo
from deepromo.models.base import PromoModel
from deepromo.models.registry import get_model_class, register_model
from deepromo.tasks import get_task, model_datamodule

from conftest import MODEL_VARIANTS, tiny_job


@pytest.fixture(scope="module")
def datamodules(tiny_world):
    """The datamodule a model class trains on (its task's view and datamodule), cached per class and parameters."""
    cache = {}

    def get(cls, params):
        key = (cls, json.dumps(cls.datamodule_options({**cls.defaults, **params}), sort_keys=True))
        if key not in cache:
            cache[key] = model_datamodule(cls, tiny_world, batch_size=128, seed=0, params=params)
        return cache[key]

    return get


def test_registry_lists_models_and_rejects_duplicates():
    names = deepromo.list_models()
    assert "splc" in names
    with pytest.raises(ValueError, match="'splc' is already registered"):

        @register_model("splc")
        class Impostor(PromoModel):
            pass

    with pytest.raises(KeyError, match=r"unknown model 'nope'; registered models are \[.*'splc'"):
        get_model_class("nope")


def test_unknown_hyperparameter_is_named(datamodules):
    cls = get_model_class("splc")
    with pytest.raises(TypeError, match=r"unknown hyper-parameter\(s\) \['hiden'\]"):
        cls.from_datamodule(datamodules(cls, {}), hiden=3)


@pytest.mark.parametrize("name, index", MODEL_VARIANTS)
def test_train_save_reload_predict(name, index, datamodules, tmp_path):
    pl.seed_everything(0, verbose=False)
    cls = get_model_class(name)
    params = cls.test_params[index]
    dm = datamodules(cls, params)
    model = cls.from_datamodule(dm, **params)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
    )
    trainer.fit(model, datamodule=dm)
    test_rows = torch.as_tensor(dm.indices["test"])
    inputs = {k: v[test_rows] for k, v in dm.tensors.items()}
    before = model.predict_arrays(inputs)
    task = get_task(cls.task)
    task.outputs(model.predict_split(dm, "test"), dm, "test")  # the task reads the model's outputs

    trainer_ckpt = tmp_path / "trainer.ckpt"
    trainer.save_checkpoint(trainer_ckpt)
    lean_ckpt = tmp_path / "lean.ckpt"
    model.save(lean_ckpt)
    for path in (trainer_ckpt, lean_ckpt):
        torch.load(path, weights_only=True)  # no pickled objects in the file
        loaded = deepromo.load_model(path)
        assert type(loaded) is cls and not loaded.training
        assert {k: loaded.hparams[k] for k in params} == params
        after = loaded.predict_arrays(inputs)
        assert set(after) == set(model.output_columns)
        for key in model.output_columns:
            assert np.isfinite(after[key]).all()
            np.testing.assert_array_equal(before[key], after[key])
        # the preprocessor travels with the checkpoint: raw frame in, same scores out
        frame = dm.view.frame.iloc[dm.indices["test"]]
        scored = loaded.predict_frame(frame, **dm.view.scoring_context())
        assert list(scored.columns) == loaded.frame_columns()
        first = model.output_columns[0]
        np.testing.assert_allclose(scored[first].to_numpy(), before[first], rtol=1e-6)


@pytest.mark.parametrize("name", deepromo.list_models())
def test_train_job_end_to_end(name, tmp_path_factory):
    """train.py's job with the model's first test parameters: the model and all its configured baselines are
    scored on the same rows with finite metrics, the task's plots and the model file are written and reload."""
    from deepromo.jobs.config import compose_train_config

    results, out = tiny_job(name, tmp_path_factory)
    cfg = compose_train_config([f"model={name}"])
    assert set(results["test"]) == {name, *(cfg.model.get("baselines") or {})}
    for method, row in results["test"].items():
        assert row and all(np.isfinite(v) for v in row.values()), (method, row)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(results, default=float))
    assert results["n_test"] > 0 and results["val"]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs and all((out / p).stat().st_size > 10_000 for p in pngs), pngs
    model = deepromo.load_model(out / "model.ckpt")
    assert model.name == name and type(model).task == get_task(type(model).task).name


def test_model_defaults_agree_with_their_config():
    """Default hyper-parameters live in the class; every model config's params state the same values."""
    from deepromo.jobs.config import compose_train_config
    from deepromo.models.base import to_primitive

    for name in deepromo.list_models():
        cls = get_model_class(name)
        params = to_primitive(compose_train_config([f"model={name}"]).model.params)
        assert set(params) <= set(cls.defaults), (name, sorted(set(params) - set(cls.defaults)))
        assert {k: cls.defaults[k] for k in params} == params, name


def test_load_model_rejects_foreign_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a deepromo checkpoint"):
        deepromo.load_model(path)
    with pytest.raises(FileNotFoundError):
        deepromo.load_model(tmp_path / "missing.ckpt")
