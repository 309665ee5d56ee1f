"""The run folder with real training runs: a real kill -9 of each kind of run resumes bit for bit,
a full disk is one line, and the folder is never stuck, shared or left behind empty. The commit
protocol itself is proved write by write in test_commit_protocol.py."""
from __future__ import annotations

import os
import random
import shlex
import shutil
import signal
import stat
import subprocess
import sys

import pytest
import torch

import train_dnn
import train_rnn
from conftest import ROOT, assert_one_error_line
from tiny_data import write_fashion_mnist, write_trec
from utils.errors import RunFolderError
from utils.storage.checkpoint import load_checkpoint
from utils.storage.files import read_json, read_jsonl, save_json
from utils.storage.run_folder import RunFolder

KILL_TARGET = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
import {script}
{script}.main({argv!r})
"""


def text_run(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    """A tiny GRU with dropout, so that random numbers matter for a resume."""
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--val-size", "30", "--batch-size", "16", "--no-progress",
            "--embed-dim", "8", "--hidden-size", "8", "--cell", "gru", "--lr", "3e-2", *extra]


def image_run(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    """A small MLP with augmentation and dropout, so that random numbers matter for a resume."""
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--val-size", "30", "--batch-size", "16", "--no-progress",
            "--hidden1-size", "32", "--hidden2-size", "16", "--dropout", "0.2", *extra]


RUNS = {"text": (train_rnn, text_run, write_trec), "image": (train_dnn, image_run, write_fashion_mnist)}


def final_state(run_dir: str) -> dict:
    """Everything a finished run leaves that must not depend on whether it was interrupted."""
    last, best = (load_checkpoint(os.path.join(run_dir, name)) for name in ("last.pt", "best.pt"))
    untimed = [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")}
               for row in read_jsonl(os.path.join(run_dir, "metrics.jsonl"))]
    summary = read_json(os.path.join(run_dir, "summary.json"))
    return {"last": last["model"], "optimizer": last["optimizer"]["state"], "best": best["model"],
            "best_epoch": best["epoch"], "metrics": untimed, "epochs": last["epoch"],
            "stopped_early": last["stopped_early"],
            "summary": {k: summary[k] for k in ("best_epoch", "best_val_acc", "test_loss", "test_acc", "epochs_run")},
            "predictions": read_json(os.path.join(run_dir, "predictions.json"))["predictions"]}


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_two_runs_cannot_share_a_folder(fashion_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    with RunFolder(out):  # another run holds the folder
        with pytest.raises(SystemExit) as stop:
            train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "is in use by another run" in err[0]
    assert os.listdir(out) == [".lock"]  # the second run wrote nothing
    train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                    "--no-progress"])  # the lock went with its holder


def test_a_run_killed_before_its_first_epoch_is_not_stuck(fashion_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    os.makedirs(out)
    save_json(os.path.join(out, "config.json"), {"epochs": 1, "script": "dnn"})  # all a kill during epoch 1 leaves
    open(os.path.join(out, "best.pt.123.0badc0de.tmp"), "wb").close()
    summary = train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                              "--no-progress"])
    assert summary["epochs_run"] == 1 and "best.pt.123.0badc0de.tmp" not in os.listdir(out)


@pytest.mark.parametrize("made_by_the_user", [False, True])
def test_a_run_that_fails_before_writing_anything_leaves_no_folder_of_its_own(made_by_the_user, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.setattr("data.fashion_mnist.DEBIAN_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setattr("data.fashion_mnist.MIRRORS", ["http://127.0.0.1:9/"])  # refused at once, no network
    out = str(tmp_path / "run")
    if made_by_the_user:
        os.makedirs(out)
    with pytest.raises(SystemExit) as stop:
        train_dnn.main(["--data-dir", str(tmp_path / "empty"), "--out-dir", out, "--no-progress"])
    assert stop.value.code == 2 and "--data-dir" in capsys.readouterr().err
    assert os.path.isdir(out) == made_by_the_user  # a folder the user made is theirs to keep
    with RunFolder(out):  # and nothing holds it
        pass


def test_a_failed_run_keeps_a_folder_that_holds_its_settings(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with RunFolder(out) as folder:
            folder.save_config({"epochs": 1})
            raise RuntimeError("killed during epoch 1")
    assert sorted(os.listdir(out)) == [".lock", "config.json"]


def test_a_crash_before_the_first_commit_leaves_a_folder_the_same_command_starts_again(fashion_dir, tmp_path,
                                                                                       monkeypatch, capsys):
    # Ctrl-C during the first step
    monkeypatch.setattr("utils.train.engine.stop_requested", lambda trainer, agree=True: True)
    out = str(tmp_path / "run")
    argv = ["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "2", "--val-size", "50", "--no-progress",
            "--hidden1-size", "16"]  # TensorBoard on: its event file is written before the first commit
    with pytest.raises(SystemExit) as stop:
        train_dnn.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 130 and len(err) == 1 and "no epoch was completed" in err[0]
    assert "config.json" in os.listdir(out) and any(name.startswith("events.out") for name in os.listdir(out))
    monkeypatch.undo()
    assert_one_error_line(train_dnn.main, ["--resume", out, "--no-progress"], capsys, "nothing to resume")
    with pytest.raises(SystemExit):
        train_dnn.main(["--resume", out])
    advice = capsys.readouterr().err.split("start it again with: ")[1].strip()
    assert shlex.split(advice)[:2] == ["python", "train_dnn.py"] and "--hidden1-size 16" in advice
    assert train_dnn.main(shlex.split(advice)[2:] + ["--no-progress"])["epochs_run"] == 2  # what it advises works
    shutil.rmtree(out)
    monkeypatch.setattr("utils.train.engine.stop_requested", lambda trainer, agree=True: True)
    with pytest.raises(SystemExit):
        train_dnn.main(argv)
    monkeypatch.undo()
    assert train_dnn.main(argv)["epochs_run"] == 2  # the same command again simply starts over in it


def test_files_follow_the_umask(fashion_dir, tmp_path):
    previous = os.umask(0o027)
    try:
        out = str(tmp_path / "run")
        train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                        "--no-progress"])
    finally:
        os.umask(previous)
    for name in ("last.pt", "best.pt", "metrics.jsonl", "summary.json", "curves.png"):
        assert stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode) == 0o640, name


def test_new_run_refuses_a_folder_with_a_committed_epoch(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                    "--no-progress"])
    with RunFolder(out) as folder, pytest.raises(RunFolderError, match="already holds a run"):
        folder.open(resume=False)


@pytest.mark.parametrize("kind", list(RUNS))
def test_a_real_kill_9_then_resume_ends_as_the_unbroken_run(kind, tmp_path):
    """kill -9 of a real training process at a seeded random moment, then resume in this process."""
    script, flags, write_data = RUNS[kind]
    data_dir = write_data(str(tmp_path / "data"), 120, 30)
    reference = str(tmp_path / "reference")
    script.main(flags(data_dir, reference, "--epochs", "5"))
    out = str(tmp_path / "killed")
    argv = flags(data_dir, out, "--epochs", "5")
    child = subprocess.Popen([sys.executable, "-c", KILL_TARGET.format(root=ROOT, script=script.__name__, argv=argv)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    last_line = f"epoch   {random.Random(kind).randint(1, 3)}/"  # that epoch is committed: the kill comes after it
    try:
        while not child.stdout.readline().startswith(last_line):
            assert child.poll() is None, f"the run ended before it printed {last_line!r}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL  # it died mid-run, not after finishing
    script.main([*argv, "--resume", out])
    assert_same(final_state(out), final_state(reference), kind)


def test_a_full_disk_is_one_line_and_the_run_resumes_exactly(tmp_path, monkeypatch, capsys):
    data_dir = write_trec(str(tmp_path / "data"), 120, 30)
    reference, out = str(tmp_path / "reference"), str(tmp_path / "run")
    train_rnn.main(text_run(data_dir, reference, "--epochs", "2"))
    real_save, saves = torch.save, []

    def full_disk(*args, **kwargs):
        saves.append(1)
        if len(saves) == 3:  # the second epoch's last.pt
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
        return real_save(*args, **kwargs)
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SystemExit) as stop:
        train_rnn.main(text_run(data_dir, out, "--epochs", "2"))
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: cannot write") and "the previous file is kept" in err[0]
    assert load_checkpoint(os.path.join(out, "last.pt"))["epoch"] == 1
    train_rnn.main(text_run(data_dir, out, "--epochs", "2", "--resume", out))
    assert_same(final_state(out), final_state(reference))


def test_a_folder_that_is_not_a_run_is_never_written_into(fashion_dir, tmp_path, capsys):
    model = tmp_path / "model"  # e.g. a folder written by save_pretrained
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 384}')
    (model / "model.safetensors").write_bytes(b"weights")
    before = {name: (model / name).read_bytes() for name in os.listdir(model)}
    for flag in ("--out-dir", "--resume"):
        with pytest.raises(SystemExit) as stop:
            train_dnn.main(["--data-dir", fashion_dir, flag, str(model), "--epochs", "1", "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1 and "not a run folder of this repository" in err[0], err
    assert {name: (model / name).read_bytes() for name in os.listdir(model)} == before
