"""Train and evaluate a deepromo model: ``python train.py model=splc data=synthetic`` (configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

from deepromo.cli import main_guard


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    from deepromo.pipeline import run

    main_guard(run, cfg)


if __name__ == "__main__":
    main()
