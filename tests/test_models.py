"""One loop over every registered model: train briefly, save, reload with weights_only, same predictions."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import deepromo
from deepromo.data.views import build_view
from deepromo.models.base import PromoModel
from deepromo.models.registry import get_model_class, register_model


@pytest.fixture(scope="module")
def datamodules(tiny_world):
    """The datamodule a model class trains on (its own ``make_datamodule`` over its view), cached per class."""
    cache = {}

    def get(cls):
        if cls not in cache:
            dm = cls.make_datamodule(build_view(cls.view, tiny_world), batch_size=128, seed=0, params=cls.tiny_params)
            dm.setup()
            cache[cls] = dm
        return cache[cls]

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
        cls(datamodules(cls).spec, hiden=3)


@pytest.mark.parametrize("name", deepromo.list_models())
def test_train_save_reload_predict(name, datamodules, tmp_path):
    pl.seed_everything(0, verbose=False)
    cls = get_model_class(name)
    dm = datamodules(cls)
    model = cls(dm.spec, **{**cls.hparams_from_data(dm), **cls.tiny_params})
    model.preprocessor = dm.preprocessor
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
    )
    trainer.fit(model, datamodule=dm)
    test_rows = torch.as_tensor(dm.indices["test"])
    inputs = {k: v[test_rows] for k, v in dm.tensors.items()}
    before = model.predict_arrays(inputs)

    trainer_ckpt = tmp_path / "trainer.ckpt"
    trainer.save_checkpoint(trainer_ckpt)
    lean_ckpt = tmp_path / "lean.ckpt"
    model.save(lean_ckpt)
    for path in (trainer_ckpt, lean_ckpt):
        torch.load(path, weights_only=True)  # no pickled objects in the file
        loaded = deepromo.load_model(path)
        assert type(loaded) is cls and not loaded.training
        after = loaded.predict_arrays(inputs)
        assert set(after) == set(model.output_columns)
        for key in model.output_columns:
            assert np.isfinite(after[key]).all()
            np.testing.assert_array_equal(before[key], after[key])
        # the preprocessor travels with the checkpoint: raw frame in, same scores out
        frame = dm.view.frame.iloc[dm.indices["test"]]
        scored = loaded.predict_frame(frame, **dm.view.scoring_context())
        np.testing.assert_allclose(scored[model.output_columns[0]].to_numpy(), before[model.output_columns[0]], rtol=1e-6)


def test_load_model_rejects_foreign_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a deepromo checkpoint"):
        deepromo.load_model(path)
    with pytest.raises(FileNotFoundError):
        deepromo.load_model(tmp_path / "missing.ckpt")
