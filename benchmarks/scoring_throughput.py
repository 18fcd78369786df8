"""Benchmark (b): scoring throughput of a trained splc model vs a scikit-learn random forest.

Trains splc briefly and the ``random_forest`` baseline's forest (200 trees, min_samples_leaf=5,
n_jobs=-1) on the same training rows, then scores the same N rows (the test split tiled up to N):

* splc ``predict_arrays`` on already-encoded cat/num tensors (the model alone),
* splc ``predict_frame`` on a raw N-row DataFrame (preprocessing + model),
* ``RandomForestClassifier.predict_proba`` on the equivalent numpy features (one-hot + numerics).

Targets (DESIGN): splc >= 1M customers/min on 2 cores and >= 5x the forest.

    python benchmarks/scoring_throughput.py               # 20k world, 3 epochs, score 1M rows
    python benchmarks/scoring_throughput.py --quick       # 5k world, 1 epoch, score 100k rows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, peak_rss_gb, time_repeats, write_results  # noqa: E402

TARGET_PER_MIN, TARGET_RATIO = 1_000_000, 5.0


def tile_rows(x, n: int):
    reps = -(-n // len(x))
    if isinstance(x, torch.Tensor):
        return x.repeat(reps, *([1] * (x.dim() - 1)))[:n].contiguous()
    return np.ascontiguousarray(np.tile(x, (reps,) + (1,) * (x.ndim - 1))[:n])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-customers", type=int, default=20_000, help="customers in the training world")
    parser.add_argument("--epochs", type=int, default=3, help="splc training epochs")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to score")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the splc scoring")
    parser.add_argument("--forest-repeats", type=int, default=1, help="timed repeats of the forest scoring")
    parser.add_argument("--no-forest-frame", dest="forest_frame", action="store_false",
                        help="skip timing the forest on the raw DataFrame (preprocessing included)")
    parser.add_argument("--batch-size", type=int, default=65536, help="splc scoring chunk size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5k world, 1 epoch, 100k rows")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_customers, args.epochs, args.rows = 5_000, 1, 100_000

    import pytorch_lightning as pl
    from sklearn.ensemble import RandomForestClassifier

    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.sources.synthetic import generate_world
    from deepromo.data.views import customer_view
    from deepromo.tasks.base import sklearn_features
    from deepromo.models.splc import TwoStageSPLC

    pl.seed_everything(args.seed, verbose=False)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    view = customer_view(generate_world(args.train_customers, seed=args.seed))
    dm = PromoDataModule(view, batch_size=512, seed=args.seed)
    dm.setup()

    t0 = time.perf_counter()
    model = TwoStageSPLC.from_datamodule(dm)
    trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    splc_fit_s = time.perf_counter() - t0
    model.eval()

    t0 = time.perf_counter()
    x_train, encoder = sklearn_features(dm, "train")
    y_train = dm.tensors["y"][dm.indices["train"]].numpy()
    forest = RandomForestClassifier(n_estimators=200, min_samples_leaf=5, class_weight="balanced_subsample",
                                    n_jobs=-1, random_state=args.seed).fit(x_train, y_train)
    forest_fit_s = time.perf_counter() - t0
    print(f"trained splc in {splc_fit_s:.1f} s, forest in {forest_fit_s:.1f} s", flush=True)

    # The same N rows for all three: the test split tiled up to N.
    n = args.rows
    test = dm.indices["test"]
    cat = tile_rows(dm.tensors["cat"][torch.as_tensor(test)], n)
    num = tile_rows(dm.tensors["num"][torch.as_tensor(test)], n)
    x_test, _ = sklearn_features(dm, "test", encoder)
    x_big = tile_rows(x_test, n)
    frame = view.frame.iloc[np.tile(test, -(-n // len(test)))[:n]][view.feature_columns].reset_index(drop=True)

    # Sanity: the three inputs describe the same rows.
    ref = model.predict_arrays({"cat": cat[:5000], "num": num[:5000]})["score"]
    via_frame = model.predict_frame(frame.iloc[:5000])["score"].to_numpy()
    assert np.allclose(ref, via_frame, atol=1e-5), "predict_frame and predict_arrays disagree on the same rows"

    tensors = {"cat": cat, "num": num}
    print(f"scoring {n:,} rows ...", flush=True)
    t_arrays = time_repeats(lambda: model.predict_arrays(tensors, batch_size=args.batch_size), args.repeats, 1)
    t_frame = time_repeats(lambda: model.predict_frame(frame, batch_size=args.batch_size), args.repeats, 1)
    t_forest = time_repeats(lambda: forest.predict_proba(x_big), args.forest_repeats, 0)

    def forest_frame():  # the forest's equivalent of predict_frame: preprocess + one-hot + predict
        c, x = dm.preprocessor.transform(frame)
        return forest.predict_proba(np.hstack([x, encoder.transform(c)]).astype(np.float32))

    t_forest_frame = time_repeats(forest_frame, args.forest_repeats, 0) if args.forest_frame else None

    def per_min(t):
        return n / t["median_s"] * 60.0

    methods = {
        "splc predict_arrays (encoded tensors)": t_arrays,
        "splc predict_frame (raw DataFrame, incl. preprocessing)": t_frame,
        "RandomForest predict_proba (numpy features)": t_forest,
    }
    if t_forest_frame is not None:
        methods["RandomForest on the raw DataFrame (preprocess + one-hot + predict_proba)"] = t_forest_frame
    forest_rate = per_min(t_forest)
    rows = [
        {"method": name, "rows": f"{n:,}", "median s": t["median_s"], "min s": t["min_s"], "repeats": t["repeats"],
         "customers / min": f"{per_min(t):,.0f}", "vs forest": per_min(t) / forest_rate}
        for name, t in methods.items()
    ]
    table = markdown_table(rows)
    r_arrays, r_frame = per_min(t_arrays) / forest_rate, per_min(t_frame) / forest_rate
    verdict = (
        f"splc predict_arrays: {per_min(t_arrays):,.0f} customers/min (target >= {TARGET_PER_MIN:,}: "
        f"{'met' if per_min(t_arrays) >= TARGET_PER_MIN else 'NOT met'}), {r_arrays:.1f}x the forest "
        f"(target >= {TARGET_RATIO:g}x: {'met' if r_arrays >= TARGET_RATIO else 'NOT met'}). "
        f"splc predict_frame (with preprocessing): {per_min(t_frame):,.0f} customers/min "
        f"({'met' if per_min(t_frame) >= TARGET_PER_MIN else 'NOT met'}), {r_frame:.1f}x the forest "
        f"({'met' if r_frame >= TARGET_RATIO else 'NOT met'}; the forest's time excludes preprocessing here)."
    )
    if t_forest_frame is not None:
        r_ff = per_min(t_frame) / per_min(t_forest_frame)
        verdict += (f" Both from the raw DataFrame (preprocessing included on both sides): splc {r_ff:.1f}x the forest "
                    f"({'met' if r_ff >= TARGET_RATIO else 'NOT met'}).")
    method = (
        f"splc ({sum(p.numel() for p in model.parameters()):,} parameters) trained {args.epochs} epochs on a "
        f"{args.train_customers:,}-customer world ({len(dm.indices['train']):,} training rows, {splc_fit_s:.1f} s); "
        f"RandomForestClassifier(200 trees, min_samples_leaf=5, class_weight='balanced_subsample', n_jobs=-1) on the "
        f"same rows' `sklearn_features` ({x_train.shape[1]} columns, {forest_fit_s:.1f} s). Scored rows: the "
        f"{len(test):,} test rows tiled to {n:,}. splc chunk size {args.batch_size}, torch threads "
        f"{torch.get_num_threads()}. Times: median of {args.repeats} (splc, after 1 warm-up) and "
        f"{args.forest_repeats} (forest) runs. Peak RSS of the process: {peak_rss_gb():.2f} GB."
    )
    print("\n" + table + "\n\n" + verdict)
    data = {
        "rows": n, "train_customers": args.train_customers, "epochs": args.epochs,
        "splc_fit_s": splc_fit_s, "forest_fit_s": forest_fit_s, "n_features_forest": int(x_train.shape[1]),
        "timings": {k: {**v, "customers_per_min": per_min(v)} for k, v in methods.items()},
        "ratio_arrays_vs_forest": r_arrays, "ratio_frame_vs_forest": r_frame,
        "ratio_frame_vs_forest_frame": None if t_forest_frame is None else per_min(t_frame) / per_min(t_forest_frame),
        "targets": {"customers_per_min": TARGET_PER_MIN, "ratio_vs_forest": TARGET_RATIO},
    }
    if not args.no_write:
        path = write_results("scoring_throughput", "Scoring throughput: splc vs random forest",
                             [("Targets", verdict), ("Results", table), ("Method", method)], data)
        print(f"\nwrote {path} (+ .json)")
    return data


if __name__ == "__main__":
    main()
