"""Each script's main([...]) in-process on tiny synthetic data: outputs, errors, resume, signals."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

import train_cnn
import train_dnn
import train_rnn
from conftest import interrupt_after_commit, same_weights, saved_accuracy
from utils.runtime import select_device
from utils.storage.checkpoint import load_checkpoint
from utils.storage.files import read_jsonl

RUN_FILES = {"config.json", "metrics.jsonl", "last.pt", "best.pt", "summary.json", "predictions.json",
             "report.json", "curves.png", "confusion_matrix.png"}
METRIC_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds",
               "samples_per_s"}


def image_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "1", "--val-size", "50",
            "--batch-size", "32", "--no-progress", "--no-tensorboard", *extra]


def text_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "1", "--val-size", "40",
            "--batch-size", "16", "--no-progress", "--no-tensorboard", "--embed-dim", "16", "--hidden-size", "16",
            *extra]


@pytest.mark.parametrize("script", [train_cnn, train_dnn])
def test_image_script_writes_a_complete_run(script, fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    summary = script.main(image_args(fashion_dir, out))
    assert RUN_FILES | {"mistakes.png"} <= set(os.listdir(out))
    assert set(summary) >= {"best_epoch", "best_val_acc", "test_loss", "test_acc", "num_params",
                            "train_seconds", "device"}
    assert summary["test_acc"] == saved_accuracy(out) and summary["device"] == str(select_device("auto"))
    (metrics,) = read_jsonl(os.path.join(out, "metrics.jsonl"))
    assert set(metrics) == METRIC_KEYS
    checkpoint = load_checkpoint(os.path.join(out, "best.pt"))
    assert checkpoint["task"] == "fashion_mnist" and checkpoint["epoch"] == 1
    assert json.load(open(os.path.join(out, "config.json")))["batch_size"] == 32


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_rnn_script_each_cell(cell, trec_dir, tmp_path):
    out = str(tmp_path / cell)
    summary = train_rnn.main(text_args(trec_dir, out, "--cell", cell))
    assert RUN_FILES | {"mistakes.txt"} <= set(os.listdir(out))
    checkpoint = load_checkpoint(os.path.join(out, "best.pt"))
    assert checkpoint["model_kwargs"]["cell"] == cell and checkpoint["meta"]["tokenizer"]["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert checkpoint["class_names"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert summary["test_acc"] == saved_accuracy(out)


def test_rnn_learns_the_synthetic_questions(trec_dir, tmp_path):
    summary = train_rnn.main(text_args(trec_dir, str(tmp_path / "r"), "--epochs", "12", "--lr", "1e-2"))
    assert summary["test_acc"] > 0.9


def comparable(rows):
    return [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")} for row in rows]


def test_same_seed_same_numbers(fashion_dir, tmp_path):
    runs = [str(tmp_path / name) for name in ("a", "b")]
    summaries = [train_dnn.main(image_args(fashion_dir, run, "--epochs", "2", "--augment")) for run in runs]
    metrics = [comparable(read_jsonl(os.path.join(run, "metrics.jsonl"))) for run in runs]
    assert metrics[0] == metrics[1] and summaries[0]["test_acc"] == summaries[1]["test_acc"]
    weights = [load_checkpoint(os.path.join(run, "last.pt"))["model"] for run in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_interrupted_then_resumed_equals_uninterrupted(fashion_dir, tmp_path, monkeypatch, capsys):
    straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
    extra = ("--epochs", "3", "--dropout", "0.3", "--augment", "--grad-accum-steps", "3")  # steps of 3 batches
    train_dnn.main(image_args(fashion_dir, straight, *extra))

    interrupt_after_commit(monkeypatch, epoch=2)
    with pytest.raises(SystemExit) as stop:
        train_dnn.main(image_args(fashion_dir, stopped, *extra))
    assert stop.value.code == 130
    assert f"--resume {stopped}" in capsys.readouterr().err
    assert load_checkpoint(os.path.join(stopped, "last.pt"))["epoch"] == 2
    monkeypatch.undo()

    train_dnn.main(["--resume", stopped, "--no-progress"])
    a, b = (load_checkpoint(os.path.join(run, "last.pt")) for run in (straight, stopped))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert comparable(a["history"]) == comparable(b["history"])
    assert comparable(read_jsonl(os.path.join(stopped, "metrics.jsonl"))) == comparable(a["history"])


def test_resume_can_raise_the_epoch_count_and_says_how_the_schedule_changes(fashion_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))  # 1 epoch of 8 steps (250 images, 50 for validation, batch 32)
    capsys.readouterr()
    summary = train_dnn.main(["--resume", out, "--epochs", "2", "--no-progress"])
    assert summary["epochs_run"] == 2 and len(read_jsonl(os.path.join(out, "metrics.jsonl"))) == 2
    said = capsys.readouterr().out
    lr = json.load(open(os.path.join(out, "config.json")))["lr"]
    cosine_at_half = f"{lr * 0.5 * (1 + math.cos(math.pi * 8 / 16)):.3g}"  # step 9 of 16 (step index 8)
    assert "--epochs 1 -> 2: the cosine schedule now spans 16 steps instead of 8" in said
    assert f"the learning rate at step 9 is {cosine_at_half} (it would have been 0)" in said


def test_a_finished_run_is_never_overwritten(fashion_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))
    before = open(os.path.join(out, "last.pt"), "rb").read()
    with pytest.raises(SystemExit) as error:
        train_dnn.main(image_args(fashion_dir, out))
    assert error.value.code == 2 and "already holds a run" in capsys.readouterr().err
    assert open(os.path.join(out, "last.pt"), "rb").read() == before


def test_eval_only_reports_on_a_checkpoint(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    trained = train_cnn.main(image_args(fashion_dir, out))
    report_dir = str(tmp_path / "eval")
    result = train_cnn.main(["--data-dir", fashion_dir, "--eval-only", "--checkpoint", os.path.join(out, "best.pt"),
                             "--out-dir", report_dir])
    assert result["test_acc"] == trained["test_acc"]
    assert {"eval.json", "report.json", "confusion_matrix.png"} <= set(os.listdir(report_dir))


def test_eval_only_writes_beside_the_checkpoint_never_over_a_runs_reports(fashion_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))
    reports = {name: open(os.path.join(out, name), "rb").read() for name in ("predictions.json", "report.json")}
    evaluate = ["--data-dir", fashion_dir, "--eval-only", "--checkpoint", os.path.join(out, "last.pt")]
    for _ in range(2):  # again into its own folder
        train_dnn.main(evaluate)
    assert os.path.isfile(os.path.join(out, "eval-last", "eval.json"))
    assert reports == {name: open(os.path.join(out, name), "rb").read() for name in reports}
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        train_dnn.main([*evaluate, "--out-dir", out])
    assert error.value.code == 2 and "it is a training run's folder" in capsys.readouterr().err


def test_eval_only_rejects_a_checkpoint_of_the_other_task(fashion_dir, trec_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))
    with pytest.raises(SystemExit) as error:
        train_rnn.main(["--data-dir", trec_dir, "--eval-only", "--checkpoint", os.path.join(out, "best.pt")])
    assert error.value.code == 2 and "fashion_mnist checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "error: --epochs must be in [1, 100000]"),
    (["--preset", "nope"], "error: unknown preset 'nope'"),
    (["--resume", "/nonexistent/run"], "error: cannot resume"),
    (["--eval-only"], "error: --eval-only needs --checkpoint"),
])
def test_bad_input_is_one_clear_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        train_cnn.main(["--data-dir", str(tmp_path), *argv])
    assert error.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_missing_data_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("data.fashion_mnist.DEBIAN_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setattr("data.fashion_mnist.MIRRORS", ["http://127.0.0.1:9/"])  # refused at once, no network
    with pytest.raises(SystemExit) as error:
        train_dnn.main(["--data-dir", str(tmp_path / "empty"), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert error.value.code == 2 and len(err) == 1 and "--data-dir" in err[0]


def test_unknown_flag_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as error:
        train_dnn.main(["--no-such-flag"])
    assert error.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_preset_sets_defaults_and_flags_win(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out, "--preset", "fast", "--batch-size", "16"))
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["scheduler"] == "onecycle" and config["batch_size"] == 16 and config["epochs"] == 1


def test_ema_weights_are_the_ones_validated_and_saved(fashion_dir, tmp_path):
    data_dir = fashion_dir
    summary = train_cnn.main(image_args(data_dir, str(tmp_path / "run"), "--ema", "0.8", "--epochs", "2"))
    last = load_checkpoint(str(tmp_path / "run" / "last.pt"))
    best = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    averaged = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert not same_weights(averaged, last["model"])  # the average is not the last weights
    if summary["best_epoch"] == 2:
        assert same_weights(best["model"], averaged)
