"""Sharding, and training across 2 CPU processes with torchrun (gloo), on synthetic data."""
from __future__ import annotations

import os

import pytest
import torch

import ddp_worker

import train_dnn
from conftest import image_args, torchrun
from data.bundle import ImageSpec, Order
from data.image_batches import ImageBatches
from data.sampling import shard
from data.text import TextBatches
from utils.config import parse_config
from utils.data_setup import image_data
from utils.runtime import Runtime, peer_failed
from utils.storage.checkpoint import load_checkpoint, model_from_checkpoint
from utils.train.teacher_tables import teacher_view_table

CPU = Runtime(torch.device("cpu"), "fp32")


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_and_cover_the_split(world_size):
    order = torch.randperm(100)
    exact = [shard(order, rank, world_size, equal=False) for rank in range(world_size)]
    assert sorted(torch.cat(exact).tolist()) == list(range(100))
    equal = [shard(order, rank, world_size, equal=True) for rank in range(world_size)]
    assert len({len(part) for part in equal}) == 1
    assert len(set(torch.cat(equal).tolist())) == len(torch.cat(equal))


def test_loaders_shard_by_rank():
    images, labels = torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10)
    parts = [torch.cat([t for _, t in ImageBatches(images, labels, 3, ImageSpec(0, 1), Order(rank=r, world_size=2))])
             for r in range(2)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10)) and not set(parts[0].tolist()) & set(parts[1].tolist())
    sequences = [[2] * (i + 1) for i in range(10)]
    text_parts = [TextBatches(sequences, list(range(10)), 4, Order(rank=r, world_size=2)).example_order() for r in range(2)]
    assert sorted(torch.cat(text_parts).tolist()) == list(range(10))


@pytest.mark.xdist_group("torchrun")  # one torchrun at a time: each takes a free port
def test_two_processes_accumulating_two_batches_match_one_process_with_a_fourfold_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    result = torchrun([os.path.join("tests", "ddp_worker.py"), str(two), "8", "2"])  # steps of 2 x 8 per process
    assert result.returncode == 0, result.stderr[-2000:]
    threads = torch.get_num_threads()
    try:  # the reference, in this process: one process with the fourfold batch
        ddp_worker.main([str(one), "32"])
    finally:
        torch.set_num_threads(threads)
    rank0, rank1 = (torch.load(two / f"rank{r}.pt", weights_only=True) for r in range(2))
    single = torch.load(one / "rank0.pt", weights_only=True)
    assert not set(rank0["examples"]) & set(rank1["examples"])  # disjoint shards
    assert rank0["steps"] == single["steps"] == 3
    for name in single["model"]:
        assert torch.equal(rank0["model"][name], rank1["model"][name]), name  # ranks agree exactly
        assert torch.allclose(rank0["model"][name], single["model"][name], atol=1e-6), name


def test_only_a_broken_collective_counts_as_another_process_failing():
    assert peer_failed(RuntimeError("[pair.cc:545] Read error [127.0.0.1]:5045: Connection reset by peer"))
    assert peer_failed(torch.distributed.DistBackendError("NCCL error: unhandled system error"))
    assert not peer_failed(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


@pytest.mark.xdist_group("torchrun")  # one torchrun at a time: each takes a free port
def test_torchrun_splits_the_teachers_table_survives_a_killed_rank_in_one_line_and_resumes(image_teacher, tmp_path,
                                                                                            capsys):
    data_dir, teacher = image_teacher
    # 2 views, each classified by one process; fp32, the arithmetic of the table computed alone below
    extra = ("--teacher", teacher, "--crop-padding", "0", "--precision", "fp32", "--device", "cpu")  # 2 processes: gloo
    cache, out = str(tmp_path / "cache"), tmp_path / "outputs" / "run"
    killed = torchrun([os.path.join("tests", "kill_rank_worker.py"), *image_args(data_dir, str(out), *extra)],
                      timeout=300, TEACHER_CACHE_DIR=cache)  # rank 1 dies after epoch 1
    assert killed.returncode != 0
    assert "2 views of each of 260 training images once, split among 2 processes" in killed.stdout
    # what the processes print (a traceback of theirs would read "[rank0]: ..."), not torchrun's own report
    ours = [line for line in killed.stderr.splitlines() if line.startswith(("error:", "[rank"))]
    # rank 0 either meets the broken collective first, or torchrun, having seen rank 1 die, stops it first
    assert len(ours) == 1 and ours[0].startswith(("error: another process of this run failed while training",
                                                  "error: interrupted while training (stopped by SIGTERM)")), ours
    assert f"holds epoch 1. Resume with: python train_dnn.py --resume {out}" in ours[0]
    (name,) = os.listdir(cache)
    config = parse_config(train_dnn.DNNConfig, image_args(data_dir, "unused", *extra), "")
    alone = teacher_view_table(model_from_checkpoint(load_checkpoint(teacher)), image_data(config, CPU).train, CPU,
                               config.eval_batch_size)
    assert torch.allclose(torch.load(os.path.join(cache, name), weights_only=True)["table"], alone, atol=1e-5)

    resumed = torchrun(["train_dnn.py", "--resume", str(out), "--epochs", "3"], TEACHER_CACHE_DIR=cache)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "read from" in resumed.stdout  # every process found the table
    assert sum(line.startswith("test accuracy") for line in resumed.stdout.splitlines()) == 1  # rank 0 reports
    assert os.listdir(tmp_path / "outputs") == ["run"] and not any(name.endswith(".tmp") for name in os.listdir(out))
    last = load_checkpoint(str(out / "last.pt"))
    assert last["epoch"] == 3 and last["teacher"]["mode"] == "views"
    assert not any(key.startswith("module.") for key in last["model"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # in one process it would train on another schedule
        train_dnn.main(["--resume", str(out), "--epochs", "4", "--no-progress"])
    assert refused.value.code == 2 and "2 -> 1 processes" in capsys.readouterr().err
