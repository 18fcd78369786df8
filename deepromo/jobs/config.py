"""Compose the ``train.py`` config from Python (tests, benchmarks, notebooks) exactly as Hydra does."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from deepromo.data.errors import UserInputError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_train_config(overrides: Iterable[str] = (), config_dir: str | Path = CONFIG_DIR,
                         config_name: str = "train") -> DictConfig:
    """``configs/train.yaml`` (or ``configs/<config_name>.yaml``: ``segment``, ``report``) with command-line
    style ``overrides`` (e.g. ``["model=dipn", "seed=3"]``).

    ``paths.output_dir`` defaults to Hydra's run folder, which exists only under a Hydra command: override it.
    """
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


class ConfigError(UserInputError):
    """A config value that cannot work: the message names the key, the value and what is expected."""


def positive_int(cfg: DictConfig, key: str, allow: tuple = ()) -> int:
    """``cfg.<key>`` as an int >= 1 (or one of ``allow``), else a ConfigError naming the key."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value not in allow):
        extra = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise ConfigError(f"{key}={value!r}: expected a positive integer{extra}")
    return value


def valid_devices(devices) -> bool:
    """What Lightning's ``devices`` takes: a count >= 1, -1 (all), "auto", device indices as a list or "0,1"."""
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    if isinstance(devices, str):
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        return devices == "auto" or (bool(parts) and all(p.isdigit() for p in parts)) or devices.strip() == "-1"
    if isinstance(devices, list):
        return bool(devices) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
    return False


# Lightning's own names; ddp_spawn is left out: it pickles the datamodule, whose graph loader collates with a closure
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true", "single_device")


def check_train_config(cfg: DictConfig) -> None:
    """Refuse, before any data is read, the train.py settings that cannot work, naming the key."""
    if isinstance(cfg.get("seed"), bool) or not isinstance(cfg.get("seed"), int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.get('seed')!r}: expected a non-negative integer")
    max_epochs = positive_int(cfg, "trainer.max_epochs", allow=(-1,))
    if max_epochs == -1 and not cfg.callbacks.early_stopping.enabled:
        raise ConfigError("trainer.max_epochs=-1 trains forever unless callbacks.early_stopping.enabled=true")
    positive_int(cfg, "data.batch_size")
    if cfg.trainer.get("threads") is not None:
        positive_int(cfg, "trainer.threads")
    devices = OmegaConf.to_container(cfg.trainer, resolve=True)["devices"]
    if not valid_devices(devices):
        raise ConfigError(f"trainer.devices={devices!r}: expected a positive number of devices, -1 (all), a list of "
                          "device indices, or 'auto'")
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if strategy not in STRATEGIES:
        raise ConfigError(f"trainer.strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}")
    positive_int(cfg, "trainer.num_nodes")
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


def check_study_config(cfg: DictConfig) -> None:
    """A study's trials run one process each: DDP would start a second study in every extra process."""
    if str(cfg.trainer.get("strategy", "auto")).startswith("ddp"):
        raise ConfigError(f"hparams_search with trainer.strategy={cfg.trainer.strategy}: a study cannot train its "
                          "trials with DDP; start several tuning workers on one study instead (docs/tuning.md)")


def check_model_params(cfg: DictConfig, defaults: dict) -> None:
    """Every ``model.params`` key is a hyper-parameter of the model, of the kind its default has."""
    params = OmegaConf.to_container(cfg.model.params, resolve=True) if cfg.model.get("params") else {}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"model.params.{unknown[0]}: model '{cfg.model.name}' has no such hyper-parameter; "
                          f"valid ones are {sorted(defaults)}")
    for key, value in params.items():
        default = defaults[key]
        if default is None or value is None:
            continue
        number = (int, float)
        ok = (isinstance(value, bool) if isinstance(default, bool)
              else isinstance(value, number) and not isinstance(value, bool) if isinstance(default, number)
              else isinstance(value, type(default)))
        if not ok:
            kind = {bool: "true or false", int: "a number", float: "a number", str: "a string", list: "a list",
                    dict: "a mapping"}.get(type(default), type(default).__name__)
            raise ConfigError(f"model.params.{key}={value!r}: expected {kind}, like its default {default!r}")


# Config subtrees whose keys something reads by name and checks (a "+key=value" there is validated later).
OPEN_PREFIXES = ("model.params.", "model.baselines.", "model.search_space.", "data.options.", "data.view_options.",
                 "hparams_search.params.", "hydra.")


def check_added_keys(overrides) -> None:
    """Refuse ``+key=value`` overrides that add a key nothing reads (Hydra would accept and ignore them)."""
    for override in overrides:
        text = str(override)
        if not text.startswith("+") or text.startswith("++"):
            continue
        key = text[1:].split("=", 1)[0].split("@", 1)[0]
        if key.startswith(OPEN_PREFIXES) or (CONFIG_DIR / key).is_dir():  # an open subtree, or a config group
            continue
        raise ConfigError(f"+{key}: no setting of that name exists, so nothing would read it; check the spelling "
                          "(python train.py --cfg job lists every key)")
