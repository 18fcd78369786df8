"""Train a deepromo model: ``python train.py model=splc data=synthetic`` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

from deepromo.cli import main_guard


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from deepromo.pipeline import run

    results = main_guard(run, cfg)
    return results.get("objective") if results else None


if __name__ == "__main__":
    main()
