"""Every config file composes into a valid train.py config, and every key in it is commented."""

import re

import pytest

from conftest import ROOT

CONFIGS = ROOT / "configs"
GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


ENTRY = {"segments": "segment"}  # groups of another entry config than train.yaml


def compose(*overrides: str, config_name: str = "train"):
    from deepromo.jobs.config import compose_train_config

    return compose_train_config(list(overrides), config_name=config_name)


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option):
    extra = {"hparams_search": [f"model={option}"] if option != "model" else ["model=mlp"]}.get(group, [])
    cfg = compose(f"{group}={option}", *extra, config_name=ENTRY.get(group, "train"))
    assert cfg.data.source and (cfg.model.name if "model" in cfg else True)


@pytest.mark.parametrize("entry", ["train", "segment", "report"])
def test_entry_configs_compose(entry):
    assert compose(config_name=entry).data.source


@pytest.mark.parametrize("name", options("model"))
def test_model_configs_name_their_model_task_baselines_and_search_space(name):
    from deepromo.models.registry import get_model_class
    from deepromo.tasks import get_task

    cfg = compose(f"model={name}")
    cls = get_model_class(cfg.model.name)
    assert cfg.model.name == name
    task = get_task(cls.task)
    for baseline, settings in (cfg.model.get("baselines") or {}).items():
        if "variant" in settings:
            assert set(settings.variant) <= set(cls.defaults), (baseline, settings.variant)
        else:
            assert baseline in task.baselines, f"{name}: '{baseline}' is no baseline of task '{task.name}'"
        if settings.get("postprocess"):
            assert settings.postprocess in task.postprocess
    search = (CONFIGS / "hparams_search" / f"{name}.yaml")
    space = compose(f"model={name}", f"hparams_search={name if search.exists() else 'model'}").hparams_search.params
    assert space, f"model '{name}' has no search space"
    for key in space:
        assert key.startswith("model.params.") and key.split(".")[-1] in cls.defaults, key


@pytest.mark.parametrize("name", options("data"))
def test_data_configs_name_a_registered_source(name):
    from deepromo.data.sources import list_sources

    cfg = compose(f"data={name}")
    assert cfg.data.source in list_sources()
    assert cfg.data.get("split") in (None, "stratified", "time", "random")


def test_debug_tiny_is_small_and_fast():
    cfg = compose("debug=tiny")
    assert cfg.data.options.n_customers <= 1000 and cfg.trainer.max_epochs <= 2 and cfg.logger.kind == "none"


LEAF = re.compile(r"^\s*[\w.${}\-]+:\s+\S")  # a key with a value on its line (section headers have none)


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_key_is_commented(path):
    lines = path.read_text().splitlines()
    missing = [f"{path.name}:{i + 1}: {line.strip()}" for i, line in enumerate(lines)
               if LEAF.match(line) and "#" not in line]
    assert not missing, "keys without a comment:\n" + "\n".join(missing)
