"""One command from data to a decision report: segments, model, plan, rollout, A/B lift with confidence intervals.

    python report.py                                   # synthetic world, dipn, simulated rollout on a fresh cohort
    python report.py data=hillstrom data.options.path=../shared/data/hillstrom.csv   # the logged Hillstrom A/B test
"""

import hydra
from omegaconf import DictConfig

from deepromo.jobs.cli import main_guard


@hydra.main(version_base="1.3", config_path="configs", config_name="report")
def main(cfg: DictConfig) -> None:
    from deepromo.jobs.report import run_decision_report

    main_guard(run_decision_report, cfg)


if __name__ == "__main__":
    main()
