"""Benchmark (c): training samples/s through the Lightning Trainer vs a bare PyTorch loop.

Same network (splc, ``label_correction=False`` so every step does the same work), same initial
weights, same datamodule (batch_size 512), same optimizer (``model.configure_optimizers()``):

* ``lightning``: ``pl.Trainer(logger=False, no checkpointing / progress bar / summary,
  num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=dm)``,
* ``bare``: ``for batch in dm.train_dataloader(): out = model(batch);
  loss = model.compute_loss(batch, out)["loss"]; opt.zero_grad(); loss.backward(); opt.step()``,
* ``lightning_nolog`` (diagnostic): the Trainer with a benchmark-local subclass whose
  ``training_step`` returns the loss without the epoch sums ``PromoModel`` keeps and logs once
  per epoch (what logging still costs).

Each run trains 1 warm-up epoch + E timed epochs; the methods alternate (A B C A B C ...) to
spread machine noise. Epoch time = time between successive ``on_train_epoch_start`` calls (the
last epoch ends at ``on_train_end``), so epoch-boundary work is included. Target: ratio >= 0.85.

    python benchmarks/trainer_overhead.py                  # 100k world, 2 rounds x 3 timed epochs
    python benchmarks/trainer_overhead.py --quick          # 20k world, 2 rounds x 2 timed epochs
    python benchmarks/trainer_overhead.py --profile        # + cProfile of one Lightning epoch
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import pstats
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_results  # noqa: E402

TARGET_RATIO = 0.85


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the world (70%% train)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after 1 warm-up epoch)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of all methods")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-diagnostic", action="store_true", help="skip the lightning_nolog variant")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default; 1 is steadier on a shared machine)")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra Lightning run")
    parser.add_argument("--quick", action="store_true", help="20k world, 2 timed epochs")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.customers, args.epochs = 20_000, 2

    if args.threads:
        torch.set_num_threads(args.threads)
    import pytorch_lightning as pl

    from deepromo.data.datamodule import PromoDataModule
    from deepromo.data.sources.synthetic import generate_world
    from deepromo.data.views import customer_view
    from deepromo.models.splc import TwoStageSPLC

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*max_epochs.*")

    class NoLogSPLC(TwoStageSPLC):
        """Diagnostic only: PromoModel's training step without its loss sums (nothing logged)."""

        def training_step(self, batch, batch_idx):
            return self.compute_loss(batch, self(batch))["loss"]

    pl.seed_everything(args.seed, verbose=False)
    view = customer_view(generate_world(args.customers, seed=args.seed))
    dm = PromoDataModule(view, batch_size=args.batch_size, seed=args.seed)
    dm.setup()
    n_train = len(dm.indices["train"])
    steps = -(-n_train // args.batch_size)
    hparams = {"label_correction": False}
    init_state = copy.deepcopy(TwoStageSPLC.from_datamodule(dm, **hparams).state_dict())
    print(f"{n_train:,} training rows, {steps} steps/epoch, torch threads {torch.get_num_threads()}", flush=True)

    def fresh(cls=TwoStageSPLC):
        model = cls.from_datamodule(dm, **hparams)
        model.load_state_dict(init_state)
        return model

    class EpochClock(pl.Callback):
        def __init__(self):
            self.marks = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.marks.append(time.perf_counter())

        def on_train_end(self, trainer, pl_module):
            self.marks.append(time.perf_counter())

    def run_lightning(cls=TwoStageSPLC, epochs=None) -> list[float]:
        epochs = 1 + args.epochs if epochs is None else epochs
        clock = EpochClock()
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                             limit_val_batches=0, accelerator="cpu", callbacks=[clock])
        trainer.fit(fresh(cls), datamodule=dm)
        return [b - a for a, b in zip(clock.marks, clock.marks[1:])][1:]

    def run_bare() -> list[float]:
        model = fresh()
        model.train()
        opt = model.configure_optimizers()
        loader = dm.train_dataloader()
        times = []
        for _ in range(1 + args.epochs):
            start = time.perf_counter()
            for batch in loader:
                out = model(batch)
                loss = model.compute_loss(batch, out)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - start)
        return times[1:]

    methods = {"bare": run_bare, "lightning": run_lightning}
    if not args.no_diagnostic:
        methods["lightning_nolog"] = lambda: run_lightning(NoLogSPLC)
    epoch_times: dict[str, list[float]] = {k: [] for k in methods}
    order = ["lightning", "bare"] + [k for k in methods if k not in ("lightning", "bare")]
    for r in range(args.rounds):
        for name in order:
            t = methods[name]()
            epoch_times[name] += t
            print(f"round {r + 1} {name:16s} epochs " + " ".join(f"{x:.2f}s" for x in t), flush=True)

    def rate(name):
        return n_train / statistics.median(epoch_times[name])

    bare_rate = rate("bare")
    rows = []
    for name in order:
        ts = epoch_times[name]
        rows.append({
            "method": name, "timed epochs": len(ts), "median epoch s": statistics.median(ts), "min epoch s": min(ts),
            "samples / s": f"{rate(name):,.0f}", "ms / step": 1e3 * statistics.median(ts) / steps,
            "vs bare": rate(name) / bare_rate,
        })
    table = markdown_table(rows)
    ratio = rate("lightning") / bare_rate
    overhead_ms = 1e3 * (statistics.median(epoch_times["lightning"]) - statistics.median(epoch_times["bare"])) / steps
    verdict = (
        f"Lightning / bare samples/s = {ratio:.3f} (target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); "
        f"Trainer overhead {overhead_ms:.2f} ms per step of {1e3 * statistics.median(epoch_times['bare']) / steps:.2f} ms."
    )
    if "lightning_nolog" in epoch_times:
        nolog = rate("lightning_nolog") / bare_rate
        log_ms = 1e3 * (statistics.median(epoch_times["lightning"]) - statistics.median(epoch_times["lightning_nolog"])) / steps
        verdict += (f" Without any training-loss logging the ratio is {nolog:.3f}: logging (summed per step, "
                    f"`self.log` once per epoch) costs {log_ms:.2f} ms per step, the rest of the Trainer loop "
                    f"{overhead_ms - log_ms:.2f} ms.")
    sections = [("Target", verdict), ("Results", table)]

    profile_text = None
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_lightning(epochs=1)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        profile_text = buf.getvalue()
        print(profile_text)
        sections.append(("cProfile of one Lightning epoch (top 25 by own time)", "```\n" + profile_text.strip() + "\n```"))

    sections.append(("Method", (
        f"splc (default hparams, label_correction=False, {sum(p.numel() for p in fresh().parameters()):,} parameters) "
        f"on a {args.customers:,}-customer world: {n_train:,} training rows, batch size {args.batch_size}, "
        f"{steps} steps per epoch, AdamW from `configure_optimizers()`, same initial weights in every run. "
        f"{args.rounds} alternating rounds, each run 1 warm-up + {args.epochs} timed epochs; samples/s from the "
        f"median epoch time. Validation is off in the Trainer (limit_val_batches=0) and absent in the bare loop. "
        f"CPU, torch threads {torch.get_num_threads()}."
    )))
    print("\n" + table + "\n\n" + verdict)
    data = {
        "customers": args.customers, "n_train": n_train, "steps_per_epoch": steps, "batch_size": args.batch_size,
        "epoch_times_s": epoch_times, "samples_per_s": {k: rate(k) for k in epoch_times},
        "ratio_lightning_vs_bare": ratio, "overhead_ms_per_step": overhead_ms, "target_ratio": TARGET_RATIO,
    }
    if not args.no_write:
        path = write_results("trainer_overhead", "Training throughput: Lightning Trainer vs bare PyTorch loop",
                             sections, data)
        print(f"\nwrote {path} (+ .json)")
    return data


if __name__ == "__main__":
    main()
