"""The run folder's promise, proved by fault injection: whenever a run dies, --resume ends bit for
bit where the unbroken run ends, and the folder is never stuck, mixed or shared."""
from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

import train_cnn
import train_dnn
import train_rnn
from conftest import ROOT, Killed, write_trec
from utils.checkpoint import TEMP_FILE, load_checkpoint, read_json, read_jsonl, save_json
from utils.config import parse_config
from utils.run_folder import RunFolder, RunFolderError

# two scenarios: every epoch improves; and early stopping (nothing improves after epoch 1)
SCENARIOS = {
    "improving": ["--epochs", "2", "--lr", "3e-2"],
    "early-stop": ["--epochs", "4", "--lr", "1e-12", "--patience", "1"],
}
EARLY_STOP_WRITES = 6  # config.json, then last.pt, metrics.jsonl, best.pt, last.pt, metrics.jsonl


def run_args(data_dir: str, out_dir: str, scenario: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--val-size", "30", "--batch-size", "16", "--no-progress",
            "--embed-dim", "8", "--hidden-size", "8", "--word-dropout", "0.1", "--cell", "gru", *SCENARIOS[scenario]]


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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return write_trec(str(tmp_path_factory.mktemp("fault") / "data"), train_count=120, test_count=30)


@pytest.fixture(scope="module")
def unbroken(data_dir, tmp_path_factory) -> dict:
    """Each scenario run once without faults (a tiny GRU with dropout and word dropout, so that random
    numbers matter): its final state and the files it replaced, in order."""
    results = {}
    for scenario in SCENARIOS:
        out = str(tmp_path_factory.mktemp(scenario) / "run")
        replaced, real_replace = [], os.replace
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)),
                                                           real_replace(src, dst))[1])
            train_rnn.main(run_args(data_dir, out, scenario))
        results[scenario] = {"state": final_state(out), "replaced": replaced}
    assert results["improving"]["state"]["best_epoch"] == 2  # both epochs commit a new best
    assert results["early-stop"]["state"]["stopped_early"] and results["early-stop"]["state"]["epochs"] == 2
    return results


def test_every_write_is_counted(unbroken):
    replaced = unbroken["improving"]["replaced"]
    assert replaced.count("last.pt") == 2 and replaced.count("best.pt") == 2 and replaced[-1] == "summary.json"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_kill_at_any_write_then_resume_ends_as_the_unbroken_run(scenario, data_dir, unbroken, tmp_path,
                                                                   monkeypatch):
    """For every k: die just before the k-th file replacement (its temporary file left behind, as
    kill -9 leaves it), resume, and compare everything with the unbroken run."""
    # deaths while the results are written are the same for both scenarios: enumerate them once
    writes = len(unbroken[scenario]["replaced"]) if scenario == "improving" else EARLY_STOP_WRITES + 1
    real_replace = os.replace
    for k in range(1, writes + 1):
        out = str(tmp_path / f"k{k}")
        calls = []

        def dying_replace(src, dst):
            calls.append(dst)
            if len(calls) == k:
                real_replace(src, f"{dst}.4242.deadbeef.tmp")  # what a kill leaves: a finished temp file
                raise Killed(f"killed before replacing {dst}")
            real_replace(src, dst)
        monkeypatch.setattr(os, "replace", dying_replace)
        with pytest.raises(Killed):
            train_rnn.main(run_args(data_dir, out, scenario))
        monkeypatch.setattr(os, "replace", real_replace)

        train_rnn.main([*run_args(data_dir, out, scenario), "--resume", out])  # the same command, resumed
        assert_same(final_state(out), unbroken[scenario]["state"], f"k={k} ({os.path.basename(calls[-1])})")
        assert not [name for name in os.listdir(out) if TEMP_FILE.search(name)], f"k={k}: temp file left"


@pytest.mark.parametrize("failing", ["torch.save", "os.replace"])
def test_a_failed_write_is_one_line_and_the_run_resumes_exactly(failing, data_dir, unbroken, tmp_path, monkeypatch,
                                                                 capsys):
    """A full disk at each checkpoint write: exit 2 with one line, previous files intact, resume exact."""
    real = {"torch.save": torch.save, "os.replace": os.replace}[failing]
    target = (torch, "save") if failing == "torch.save" else (os, "replace")
    checkpoint_writes = [i for i, name in enumerate(unbroken["improving"]["replaced"], 1) if name.endswith(".pt")]
    for k in range(1, len(checkpoint_writes) + 1):
        out = str(tmp_path / f"k{k}")
        calls = []

        def full_disk(*args, **kwargs):
            if failing == "torch.save" or str(args[1]).endswith(".pt"):  # each checkpoint write
                calls.append(1)
                if len(calls) == k:  # what each of them raises on a full disk
                    raise (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
                           if failing == "torch.save" else OSError(28, "No space left on device"))
            return real(*args, **kwargs)
        monkeypatch.setattr(*target, full_disk)
        with pytest.raises(SystemExit) as stop:
            train_rnn.main(run_args(data_dir, out, "improving"))
        monkeypatch.setattr(*target, real)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1, err
        assert err[0].startswith("error: cannot write") and "the previous file is kept" in err[0]
        assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
        train_rnn.main([*run_args(data_dir, out, "improving"), "--resume", out])
        assert_same(final_state(out), unbroken["improving"]["state"], f"{failing} k={k}")


KILL_TARGET = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
import train_rnn
train_rnn.main({argv!r})
"""


def test_real_kill_9_at_random_moments_then_resume(data_dir, tmp_path):
    """kill -9 of a real training process at seeded random moments, then resume in this process."""
    argv = run_args(data_dir, "", "improving")
    argv[argv.index("--epochs") + 1] = "8"
    reference = str(tmp_path / "reference")
    train_rnn.main([*argv[:3], reference, *argv[4:]])
    rng = random.Random(0)
    for attempt in range(2):
        out = str(tmp_path / f"killed{attempt}")
        child = subprocess.Popen([sys.executable, "-c", KILL_TARGET.format(root=ROOT, argv=[*argv[:3], out, *argv[4:]])],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            assert child.stdout.readline().startswith("run folder")  # training has begun
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL  # it died mid-run, not after finishing
        train_rnn.main([*argv[:3], out, *argv[4:], "--resume", out])
        assert_same(final_state(out), final_state(reference), f"attempt {attempt}")


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
    save_json(os.path.join(out, "config.json"), {"epochs": 1})  # all a kill during epoch 1 leaves
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


@pytest.mark.parametrize("config_class", [train_cnn.CNNConfig, train_dnn.DNNConfig])
def test_a_run_saved_before_a_flag_existed_resumes_as_it_ran(config_class, tmp_path):
    """--crop-padding came after runs that cropped with padding 2: their resume keeps 2, whatever
    the script's default is now; a saved value or a flag on the command line still wins."""
    saved = {key: value for key, value in vars(config_class()).items() if key != "crop_padding"}
    save_json(str(tmp_path / "config.json"), {**saved, "augment": True})
    assert parse_config(config_class, ["--resume", str(tmp_path)], "").crop_padding == 2
    save_json(str(tmp_path / "config.json"), {**saved, "augment": True, "crop_padding": 0})
    assert parse_config(config_class, ["--resume", str(tmp_path)], "").crop_padding == 0
    assert parse_config(config_class, ["--resume", str(tmp_path), "--crop-padding", "3"], "").crop_padding == 3


def test_interrupt_before_the_first_epoch_says_nothing_was_saved(fashion_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("utils.engine.stop_requested", lambda trainer: True)  # Ctrl-C during the first step
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "2", "--val-size", "50",
                        "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 130 and len(err) == 1 and "no epoch was completed" in err[0]
    monkeypatch.undo()
    assert train_dnn.main(["--resume", out, "--no-progress"])["epochs_run"] == 2


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


def test_repair_rewrites_views_that_disagree_with_the_commit_record(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "2", "--val-size", "50",
                    "--no-progress"])
    before = final_state(out)
    os.remove(os.path.join(out, "best.pt"))
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write('{"epoch": 3, "trunc')
    folder = RunFolder(out)
    with folder:
        folder.open(resume=True)
    assert "repaired best.pt, metrics.jsonl" in folder.notes[0]
    assert_same(final_state(out), before)


def test_new_run_refuses_a_folder_with_a_committed_epoch(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    train_dnn.main(["--data-dir", fashion_dir, "--out-dir", out, "--epochs", "1", "--val-size", "50",
                    "--no-progress"])
    with RunFolder(out) as folder, pytest.raises(RunFolderError, match="already holds a run"):
        folder.open(resume=False)
