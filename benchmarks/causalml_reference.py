"""causalml reference rows on Hillstrom (optional: only when ``causalml`` is importable; not a dependency).

causalml's S-, T- and X-learners (``BaseSClassifier``, ``BaseTClassifier``, ``BaseXClassifier``) with the same
scikit-learn gradient boosting the response task's own meta-learners use, on exactly the rows of the leaderboard's
``hillstrom_<arm>_<outcome>`` datamodule for each seed (``model_datamodule`` of dipn, split seeded by the seed), so
the Qini of every causalml learner is paired with deepromo's learner of the same family on the same test rows.
Reports the Qini per learner (mean ± sd over seeds) and the paired bootstrap 95 % CI of causalml − deepromo per seed.

    PYTHONPATH=/tmp/cml_site .venv/bin/python benchmarks/causalml_reference.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import markdown_table, write_results  # noqa: E402

FAMILIES = {"s_learner": "BaseSClassifier", "t_learner": "BaseTClassifier", "x_learner": "BaseXClassifier"}


def causalml_uplift(family: str, x_train, t_train, y_train, x_test, seed: int) -> np.ndarray:
    """[n_test] uplift of any treatment vs control from causalml's learner of ``family``."""
    import causalml.inference.meta as meta

    from deepromo.tasks.base import gbm

    learner = getattr(meta, FAMILIES[family])
    kwargs = ({"outcome_learner": gbm("classifier", seed), "effect_learner": gbm("regressor", seed)}
              if family == "x_learner" else {"learner": gbm("classifier", seed)})
    model = learner(control_name=0, **kwargs)
    treatment = t_train.astype(int)
    if family == "x_learner":
        p = np.full(len(treatment), treatment.mean())
        model.fit(x_train, treatment, y_train, p=p)
        return np.asarray(model.predict(x_test, p=np.full(len(x_test), treatment.mean()))).reshape(len(x_test), -1)[:, 0]
    model.fit(x_train, treatment, y_train)
    return np.asarray(model.predict(x_test)).reshape(len(x_test), -1)[:, 0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="../shared/data/hillstrom.csv")
    parser.add_argument("--arm", default="any")
    parser.add_argument("--outcome", default="visit")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    try:
        from importlib.metadata import version

        import causalml.inference.meta  # noqa: F401

        cml_version = version("causalml")
    except ImportError as exc:
        print(f"causalml is not importable ({exc}); it is an optional reference, not a dependency. Install it "
              f"outside the project, e.g. pip install --target /tmp/cml_site causalml, then set PYTHONPATH.")
        return 0

    from deepromo.data.sources import load_source
    from deepromo.metrics.uplift import bootstrap_ci, qini_coefficient
    from deepromo.models.registry import get_model_class
    from deepromo.tasks import get_task, model_datamodule
    from deepromo.tasks.base import sklearn_features, split_labels
    from deepromo.tasks.response import split_treatment

    data = load_source("hillstrom", path=args.path, treatment_arm=args.arm, outcome=args.outcome)
    task = get_task("response")
    per_seed = []
    for seed in range(args.seeds):
        dm = model_datamodule(get_model_class("dipn"), data, batch_size=512, seed=seed)
        x_train, encoder = sklearn_features(dm, "train")
        x_test = sklearn_features(dm, "test", encoder)[0]
        t_train, y_train = split_treatment(dm, "train"), split_labels(dm, "train")
        t_test, y_test = (split_treatment(dm, "test") > 0).astype(np.int64), split_labels(dm, "test")
        for family in FAMILIES:
            started = time.perf_counter()
            theirs = causalml_uplift(family, x_train, t_train, y_train, x_test, seed)
            seconds = time.perf_counter() - started
            ours = task.uplift_score(task.run_baseline(family, dm, ("test",), seed=seed)["test"])
            diff = bootstrap_ci(qini_coefficient, y_test, t_test, theirs, n_boot=500, seed=seed, reference=ours)
            per_seed.append({"seed": seed, "learner": family, "causalml_qini": qini_coefficient(y_test, t_test, theirs),
                             "deepromo_qini": qini_coefficient(y_test, t_test, ours), "diff": diff["value"],
                             "diff_low": diff["low"], "diff_high": diff["high"], "causalml_seconds": seconds})
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in per_seed[-1].items()})
    rows = []
    for family in FAMILIES:
        mine = [r for r in per_seed if r["learner"] == family]
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
        rows.append({"learner": family,
                     "causalml qini": f"{statistics.mean(r['causalml_qini'] for r in mine):.4f} ± "
                                      f"{sd([r['causalml_qini'] for r in mine]):.4f}",
                     "deepromo qini": f"{statistics.mean(r['deepromo_qini'] for r in mine):.4f} ± "
                                      f"{sd([r['deepromo_qini'] for r in mine]):.4f}",
                     "seeds where the paired CI excludes 0": sum((r["diff_low"] > 0) or (r["diff_high"] < 0)
                                                                 for r in mine)})
    table = markdown_table(rows)
    print(table)
    if not args.no_write:
        write_results("causalml_reference", f"causalml {cml_version} reference rows, Hillstrom {args.arm} -> "
                      f"{args.outcome}", [("Qini on the leaderboard's rows", table)],
                      {"causalml": cml_version, "per_seed": per_seed})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
