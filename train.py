"""Train and evaluate a deepromo model, or tune it with Optuna.

    python train.py model=splc                       # one run (configs/train.yaml)
    python train.py model=splc hparams_search=splc   # an Optuna study over configs/hparams_search/splc.yaml
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from deepromo.jobs.cli import main_guard


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from deepromo.jobs.config import check_added_keys

    main_guard(check_added_keys, HydraConfig.get().overrides.task)
    if cfg.get("hparams_search"):
        from deepromo.jobs.config import check_study_config
        from deepromo.jobs.tune import run_study

        main_guard(check_study_config, cfg)

        main_guard(run_study, cfg)
    else:
        from deepromo.jobs.train import run

        main_guard(run, cfg)


if __name__ == "__main__":
    main()
