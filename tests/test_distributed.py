"""Sharding, and training across 2 CPU processes with torchrun (gloo), on synthetic data."""
from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest
import torch

import train_cnn
import train_dnn
import train_rnn
from conftest import ROOT, torchrun
from data.image_batches import ImageBatches
from data.sampling import shard
from data.text import TextBatches
from utils.storage.checkpoint import load_checkpoint
from utils.errors import ConfigError
from utils.runtime import cpu_bf16_native, select_device, select_precision


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
    parts = [torch.cat([t for _, t in ImageBatches(images, labels, 3, mean=0, std=1, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10)) and not set(parts[0].tolist()) & set(parts[1].tolist())
    sequences = [[2] * (i + 1) for i in range(10)]
    text_parts = [TextBatches(sequences, list(range(10)), 4, rank=r, world_size=2).example_order() for r in range(2)]
    assert sorted(torch.cat(text_parts).tolist()) == list(range(10))


@pytest.mark.xdist_group("torchrun")  # one torchrun at a time: each takes a free port
def test_two_processes_match_one_process_with_double_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir(), one.mkdir()
    result = torchrun([os.path.join("tests", "ddp_worker.py"), str(two), "8"])
    assert result.returncode == 0, result.stderr[-2000:]
    subprocess.run([sys.executable, os.path.join("tests", "ddp_worker.py"), str(one), "16"], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": ROOT})
    rank0, rank1 = (torch.load(two / f"rank{r}.pt", weights_only=True) for r in range(2))
    single = torch.load(one / "rank0.pt", weights_only=True)
    assert not set(rank0["examples"]) & set(rank1["examples"])  # disjoint shards
    assert rank0["steps"] == single["steps"] == 6
    for name in single["model"]:
        assert torch.equal(rank0["model"][name], rank1["model"][name]), name  # ranks agree exactly
        assert torch.allclose(rank0["model"][name], single["model"][name], atol=1e-6), name


@pytest.mark.xdist_group("torchrun")  # one torchrun at a time: each takes a free port
def test_a_failing_rank_fails_the_whole_run(tmp_path):
    result = torchrun([os.path.join("tests", "ddp_worker.py"), str(tmp_path), "8", "fail"], timeout=120)
    assert result.returncode != 0 and "rank 1 fails on purpose" in result.stderr


@pytest.mark.xdist_group("torchrun")  # one torchrun at a time: each takes a free port
def test_torchrun_script_writes_one_run_folder(fashion_dir, tmp_path):
    out = tmp_path / "outputs" / "run"
    result = torchrun(["train_dnn.py", "--data-dir", fashion_dir, "--out-dir", str(out), "--epochs", "2",
                       "--val-size", "50", "--batch-size", "16", "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("test accuracy") == 1  # only rank 0 reports
    assert os.listdir(tmp_path / "outputs") == ["run"]
    assert not any(name.endswith(".tmp") for name in os.listdir(out))
    summary = load_checkpoint(str(out / "last.pt"))
    assert summary["epoch"] == 2 and not any(k.startswith("module.") for k in summary["model"])
    resumed = torchrun(["train_dnn.py", "--resume", str(out), "--epochs", "3", "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(str(out / "last.pt"))["epoch"] == 3


def test_device_and_precision_selection():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_precision("auto", torch.device("cpu")) == "fp32"
    assert select_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        select_precision("fp16", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            select_device("cuda")


def test_compiled_model_checkpoint_loads_into_a_plain_model(fashion_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    out = str(tmp_path / "run")
    train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                    "--compile", "--precision", "bf16", "--no-progress"])
    checkpoint = load_checkpoint(os.path.join(out, "best.pt"), map_location="cpu")
    assert not any(k.startswith("_orig_mod.") for k in checkpoint["model"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_matches_cpu_accuracy_roughly(fashion_dir, tmp_path):
    summaries = [train_dnn.main(["--data-dir", fashion_dir, "--out-dir", str(tmp_path / device), "--epochs", "3",
                                 "--val-size", "50", "--device", device, "--no-progress"])
                 for device in ("cpu", "cuda")]
    assert summaries[1]["device"].startswith("cuda")
    assert abs(summaries[0]["test_acc"] - summaries[1]["test_acc"]) < 0.1


def test_auto_precision_takes_native_cpu_bf16_only_for_models_it_speeds_up(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("utils.runtime.cpu_bf16_native", lambda: True)
    assert select_precision("auto", cpu, cpu_bf16=True) == "bf16"
    assert select_precision("auto", cpu, cpu_bf16=False) == "fp32"
    monkeypatch.setattr("utils.runtime.cpu_bf16_native", lambda: False)
    assert select_precision("auto", cpu, cpu_bf16=True) == "fp32"


@pytest.mark.parametrize("script,flags,precision", [("dnn", [], "fp32"), ("dnn", ["--batch-size", "128"], "bf16"),
                                                    ("cnn", [], "bf16"), ("rnn", [], "fp32")])
def test_auto_precision_on_a_native_bf16_cpu_is_bf16_only_where_it_was_faster(script, flags, precision, fashion_dir,
                                                                                trec_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("utils.runtime.cpu_bf16_native", lambda: True)
    main = {"dnn": train_dnn.main, "cnn": train_cnn.main, "rnn": train_rnn.main}[script]
    summary = main(["--data-dir", trec_dir if script == "rnn" else fashion_dir, "--out-dir", str(tmp_path / "run"),
                    "--epochs", "1", "--val-size", "50", "--no-progress", "--no-tensorboard", *flags])
    assert summary["precision"] == precision and "cpu_bf16_native" in summary


@pytest.mark.parametrize("flags,onednn,native", [("fpu avx2 amx_bf16 amx_tile", True, True),
                                                 ("fpu avx512f avx512_bf16", True, True),
                                                 ("fpu avx2 fma", True, False),
                                                 ("fpu amx_bf16", False, False)])
def test_cpu_bf16_detection_reads_the_flags_and_asks_onednn(flags, onednn, native, tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
    assert cpu_bf16_native(str(cpuinfo)) is native
    assert cpu_bf16_native(str(tmp_path / "missing")) is False

