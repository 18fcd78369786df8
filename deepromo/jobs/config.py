"""Compose the ``train.py`` config from Python (tests, benchmarks, notebooks) exactly as Hydra does."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_train_config(overrides: Iterable[str] = (), config_dir: str | Path = CONFIG_DIR,
                         config_name: str = "train") -> DictConfig:
    """``configs/train.yaml`` (or ``configs/<config_name>.yaml``: ``segment``, ``report``) with command-line
    style ``overrides`` (e.g. ``["model=dipn", "seed=3"]``).

    ``paths.output_dir`` defaults to Hydra's run folder, which exists only under a Hydra command: override it.
    """
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
