"""Segment a data source's customers: RFM -> k chosen by gap / silhouette / elbow / BIC -> profile and plots.

    python segment.py                                   # the synthetic world (configs/segment.yaml)
    python segment.py data=hillstrom data.options.path=../shared/data/hillstrom.csv segments.method=gmm
"""

import hydra
from omegaconf import DictConfig

from deepromo.jobs.cli import main_guard


@hydra.main(version_base="1.3", config_path="configs", config_name="segment")
def main(cfg: DictConfig) -> None:
    from deepromo.jobs.segment import run_segmentation

    main_guard(run_segmentation, cfg)


if __name__ == "__main__":
    main()
