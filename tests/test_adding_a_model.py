"""docs/adding-a-model.md shows exactly the files of the mlp model, and its usage block runs as written."""

import os
import re

import pytest

from conftest import ROOT

PAGE = (ROOT / "docs" / "adding-a-model.md").read_text()


def blocks(marker: str) -> list[tuple[str, str]]:
    """(marker argument, fenced code) of every code block right after ``<!-- marker ... -->``."""
    pattern = rf"<!-- {marker}:? ?(\S*) -->\n```\w*\n(.*?)```"
    return re.findall(pattern, PAGE, flags=re.S)


def test_page_shows_the_model_files_byte_for_byte():
    shown = dict(blocks("file"))
    assert set(shown) == {"deepromo/models/mlp.py", "configs/model/mlp.yaml"}
    for path, code in shown.items():
        assert (ROOT / path).read_text() == code, f"docs/adding-a-model.md is out of date with {path}"


def test_page_usage_block_trains_registers_loads_and_tunes(tmp_path, monkeypatch, mlflow_store):
    (_, code), = blocks("run")
    monkeypatch.chdir(tmp_path)  # outputs/, mlflow.db and optuna.db of the block land here
    namespace: dict = {}
    exec(compile(code, "docs/adding-a-model.md", "exec"), namespace)
    assert namespace["results"]["registered"]["alias"] == "champion"
    assert type(namespace["model"]).__name__ == "TargetingMLP"
    assert len(namespace["study"].trials) == 2 and os.path.exists(tmp_path / "optuna.db")
    assert 0.5 < namespace["results"]["test"]["mlp"]["auc"] <= 1.0


@pytest.mark.parametrize("name", ["mlp"])
def test_the_model_is_everywhere_a_model_is(name):
    import deepromo
    from deepromo.jobs.config import compose_train_config

    assert name in deepromo.list_models()
    cfg = compose_train_config([f"model={name}", "hparams_search=model"])
    assert cfg.model.name == name and set(cfg.hparams_search.params) == set(cfg.model.search_space)
