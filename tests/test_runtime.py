"""Device, precision and torch.compile choices, and where bf16 is native on a CPU."""
from __future__ import annotations

import functools
import os

import pytest
import torch

import train_cnn
import train_dnn
import train_rnn
from utils.config import parse_config
from utils.errors import ConfigError
from utils.runtime import cpu_bf16_native, init_runtime, select_device, select_precision
from utils.train.experiment import cpu_bf16_helps
from utils.storage.checkpoint import load_checkpoint


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
def test_auto_precision_on_a_native_bf16_cpu_is_bf16_only_where_it_was_faster(script, flags, precision, monkeypatch):
    monkeypatch.setattr("utils.runtime.cpu_bf16_native", lambda: True)
    module = {"dnn": train_dnn, "cnn": train_cnn, "rnn": train_rnn}[script]
    config_class = next(value for name, value in vars(module).items() if name.endswith("Config") and
                        value.__module__ == module.__name__)
    config = parse_config(config_class, flags, "", module.PRESETS)
    assert init_runtime("cpu", config.precision, cpu_bf16_helps(config)).precision == precision


def test_a_run_records_the_precision_auto_picked(fashion_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("utils.runtime.cpu_bf16_native", lambda: True)
    summary = train_dnn.main(["--data-dir", fashion_dir, "--out-dir", str(tmp_path / "run"), "--epochs", "1",
                              "--val-size", "50", "--no-progress", "--no-tensorboard", "--batch-size", "128"])
    assert summary["precision"] == "bf16" and "cpu_bf16_native" in summary


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
