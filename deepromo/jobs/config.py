"""Compose the ``train.py`` config from Python (tests, benchmarks, notebooks) exactly as Hydra does."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_train_config(overrides: Iterable[str] = (), config_dir: str | Path = CONFIG_DIR,
                         config_name: str = "train") -> DictConfig:
    """``configs/train.yaml`` (or ``configs/<config_name>.yaml``: ``segment``, ``report``) with command-line
    style ``overrides`` (e.g. ``["model=dipn", "seed=3"]``).

    ``paths.output_dir`` defaults to Hydra's run folder, which exists only under a Hydra command: override it.
    """
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


class ConfigError(ValueError):
    """A config value that cannot work: the message names the key, the value and what is expected."""


def positive_int(cfg: DictConfig, key: str, allow: tuple = ()) -> int:
    """``cfg.<key>`` as an int >= 1 (or one of ``allow``), else a ConfigError naming the key."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value not in allow):
        extra = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise ConfigError(f"{key}={value!r}: expected a positive integer{extra}")
    return value


def check_train_config(cfg: DictConfig) -> None:
    """Refuse, before any data is read, the train.py settings that cannot work, naming the key."""
    if isinstance(cfg.get("seed"), bool) or not isinstance(cfg.get("seed"), int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.get('seed')!r}: expected a non-negative integer")
    max_epochs = positive_int(cfg, "trainer.max_epochs", allow=(-1,))
    if max_epochs == -1 and not cfg.callbacks.early_stopping.enabled:
        raise ConfigError("trainer.max_epochs=-1 trains forever unless callbacks.early_stopping.enabled=true")
    positive_int(cfg, "data.batch_size")
    devices = cfg.trainer.devices
    if devices != "auto" and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ConfigError(f"trainer.devices={devices!r}: expected a positive number of devices or 'auto'")
    accelerator = str(cfg.trainer.accelerator)
    if accelerator not in ("cpu", "gpu", "cuda", "mps", "auto"):
        raise ConfigError(f"trainer.accelerator={accelerator!r}: expected cpu, gpu, cuda, mps or auto")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} but torch sees no CUDA GPU on this machine "
                              f"(torch {torch.__version__}); use trainer.accelerator=cpu")
    for key in ("model.params.lr", "model.params.weight_decay"):
        value = OmegaConf.select(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{key}={value!r}: expected a non-negative number")
    resume = cfg.get("resume")
    if resume is not None and not Path(str(resume)).exists():
        raise ConfigError(f"resume={resume!r}: no such run folder or checkpoint")
