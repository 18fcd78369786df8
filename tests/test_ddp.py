"""Lightning DDP: the samplers shard every epoch across ranks (fast), and every model trains with 2 gloo processes
to the metrics of one process (slow: each run starts its processes)."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import ROOT, compose_config

import deepromo.data.datamodule as datamodule
import deepromo.data.graph.datamodule as graph_datamodule
from deepromo.data.datamodule import (EvalBatches, LengthBucketBatchSampler, ShuffledBatches, TensorDictDataset,
                                      batch_loader, shard_batches)
from deepromo.data.errors import UserInputError
from deepromo.jobs.config import ConfigError, check_study_config, check_train_config


def epoch_of_every_rank(make_sampler, world: int, monkeypatch) -> list[list[list[int]]]:
    """The batches each rank draws in one epoch (each rank builds its own sampler, as each process does)."""
    shares = []
    for rank in range(world):
        monkeypatch.setattr(datamodule, "process_rank", lambda rank=rank: (rank, world))
        sampler = make_sampler()
        batches = [list(map(int, b)) for b in sampler]
        assert len(batches) == len(sampler)  # Lightning sizes the epoch with len()
        shares.append(batches)
    return shares


def assert_every_row_once(shares, n: int) -> None:
    counts = Counter(row for batches in shares for batch in batches for row in batch)
    assert sorted(counts) == list(range(n)), "a row is missing"
    assert max(counts.values()) == 1, "a row is repeated"
    assert len({len(batches) for batches in shares}) == 1, "ranks would take different numbers of steps"
    assert all(len(batch) > 0 for batches in shares for batch in batches)


@pytest.mark.parametrize("n,batch_size,world", [(1000, 64, 2), (1001, 64, 2), (129, 128, 2), (130, 64, 3),
                                                (7, 64, 4), (5, 2, 2)])
def test_shuffled_batches_shard_every_row_once_with_equal_steps(n, batch_size, world, monkeypatch):
    shares = epoch_of_every_rank(lambda: ShuffledBatches(n, batch_size, seed=3), world, monkeypatch)
    assert_every_row_once(shares, n)


@pytest.mark.parametrize("n,world", [(3000, 2), (2999, 2), (257, 3)])
def test_length_buckets_shard_every_row_once_and_keep_lengths_together(n, world, monkeypatch):
    lengths = np.random.default_rng(0).integers(1, 200, n)
    make = lambda: LengthBucketBatchSampler(lengths, batch_size=32, seed=1, pool_batches=5)  # noqa: E731
    shares = epoch_of_every_rank(make, world, monkeypatch)
    assert_every_row_once(shares, n)
    spread = np.mean([np.ptp(lengths[b]) for batches in shares for b in batches])
    assert spread < 0.25 * np.ptp(lengths)  # still bucketed: a random batch spans nearly the whole range


def test_two_ranks_draw_the_batches_of_the_doubled_batch_size(monkeypatch):
    """Rank r takes global batches r, r + 2, ...: at each step the two ranks hold the rows one process would
    hold with twice the batch size, so data.batch_size=B/2 on 2 processes steps through the batches of B."""
    single = [sorted(b) for b in ShuffledBatches(1000, 128, seed=5)]
    rank0, rank1 = epoch_of_every_rank(lambda: ShuffledBatches(1000, 64, seed=5), 2, monkeypatch)
    assert [sorted(a + b) for a, b in zip(rank0, rank1)] == single


def test_evaluation_batches_shard_and_a_lone_batch_is_split(monkeypatch):
    dataset = TensorDictDataset({"x": torch.arange(300)})
    shares = epoch_of_every_rank(lambda: batch_loader(dataset, 128, shuffle=False).sampler, 2, monkeypatch)
    assert_every_row_once(shares, 300)
    lone = epoch_of_every_rank(lambda: EvalBatches([range(10)]), 2, monkeypatch)  # one batch, two ranks
    assert_every_row_once(lone, 10)
    seq = TensorDictDataset({"seq_mask": torch.rand(301, 20) > 0.5})
    assert_every_row_once(epoch_of_every_rank(lambda: batch_loader(seq, 64, shuffle=False).sampler, 2, monkeypatch),
                          301)


def test_too_few_rows_for_the_processes_is_named():
    with pytest.raises(UserInputError, match="3 rows cannot be shared by 4 processes"):
        shard_batches([[0], [1], [2]], 0, 4)


def test_gat_neighbour_sampled_training_batches_shard_across_ranks(monkeypatch):
    from test_gat import planted_world

    from deepromo.models.gat import GATOfferRanker
    from deepromo.tasks import model_datamodule

    dm = model_datamodule(GATOfferRanker, planted_world(200), batch_size=32, seed=0, params={"fanout": [4, 2]})
    rows, negatives = [], []
    for rank in range(2):
        monkeypatch.setattr(datamodule, "process_rank", lambda rank=rank: (rank, 2))
        monkeypatch.setattr(graph_datamodule, "process_rank", lambda rank=rank: (rank, 2))
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(0)
        batches = list(loader)
        assert len(batches) == len(loader)
        rows.append(torch.cat([b["row_id"] for b in batches]))
        negatives.append(batches[0]["neg"])
    everything = torch.cat(rows)
    assert sorted(everything.tolist()) == sorted(dm.indices["train"].tolist())  # each training row once
    assert not torch.equal(negatives[0], negatives[1])  # each rank draws its own negatives and neighbours


def test_ddp_configs_compose_and_bad_strategies_are_named(tmp_path):
    cfg = compose_config(["trainer=ddp"], tmp_path)
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.accelerator) == ("ddp", 2, "cpu")
    check_train_config(cfg)
    gpu = compose_config(["trainer=ddp_gpu"], tmp_path)
    assert (gpu.trainer.strategy, gpu.trainer.precision) == ("ddp", "bf16-mixed")
    with pytest.raises(ConfigError, match="trainer.strategy='ddp_spawn'"):
        check_train_config(compose_config(["trainer.strategy=ddp_spawn"], tmp_path))
    with pytest.raises(ConfigError, match="a study cannot train its trials with DDP"):
        check_study_config(cfg)


# --- slow: real 2-process runs ------------------------------------------------------------------------------

BATCH = 256
SETTINGS = ["data.options.n_customers=3000", "trainer.max_epochs=4", "model.baselines=null", "logger=none",
            "trainer.enable_progress_bar=false", "trainer.threads=1", "callbacks.evaluate_best=false"]
MAIN_METRIC = {"splc": "auc", "dipn": "auc", "txl": "auc", "gat": "hit_rate_at_10"}
TOLERANCE = {"splc": 0.03, "dipn": 0.03, "txl": 0.03, "gat": 0.05}


def train_run(model: str, run_dir, ddp: bool) -> tuple[dict, str]:
    overrides = [f"model={model}", *SETTINGS, f"hydra.run.dir={run_dir}"]
    overrides += ["trainer=ddp", f"data.batch_size={BATCH // 2}"] if ddp else [f"data.batch_size={BATCH}"]
    done = subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text()), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MAIN_METRIC))
def test_two_gloo_processes_train_to_the_metrics_of_one(model, tmp_path):
    import deepromo

    single, _ = train_run(model, tmp_path / "single", ddp=False)
    ddp, stdout = train_run(model, tmp_path / "ddp", ddp=True)
    # half the batch on each of 2 processes: the same optimizer steps over the same rows
    assert ddp["trained_steps"] == single["trained_steps"]
    key = MAIN_METRIC[model]
    a, b = single["test"][model][key], ddp["test"][model][key]
    assert abs(a - b) <= TOLERANCE[model], f"{model} test {key}: 1 process {a:.4f}, 2 processes {b:.4f}"
    # rank 0 alone evaluated and wrote; rank 1 left its own log only
    assert stdout.count("outputs in") == 1
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").exists()
    for name in ("best.ckpt", "last.ckpt"):  # Lightning's, written by rank 0
        state = torch.load(tmp_path / "ddp" / "checkpoints" / name, weights_only=True)
        assert 0 < state["global_step"] <= ddp["trained_steps"]
    reloaded = deepromo.load_model(tmp_path / "ddp" / "model.ckpt")
    assert reloaded.name == model
