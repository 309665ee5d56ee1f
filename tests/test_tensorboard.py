"""TensorBoard event files, read back with TensorBoard's own reader: equal to metrics.jsonl, also
after an interrupted or killed run is resumed (no duplicated steps)."""
from __future__ import annotations

import os

import pytest

import train_dnn
from conftest import Killed, interrupt_after_commit
from utils.storage.files import read_jsonl
from utils.storage.run_folder import RunFolder
from utils.train.tensorboard import EPOCH_SCALARS, TensorBoardLog


def events(run_dir: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "3", "--val-size", "50", "--batch-size", "16",
            "--no-progress", "--hidden1-size", "16", "--hidden2-size", "8", "--augment", *extra]


def assert_events_equal_metrics(run_dir: str) -> None:
    rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    board = events(run_dir)
    for key, tag in EPOCH_SCALARS.items():
        scalars = board.Scalars(tag)
        assert [s.value for s in scalars] == pytest.approx([row[key] for row in rows], rel=1e-6), tag  # float32
        assert len({s.step for s in scalars}) == len(scalars) == len(rows), tag  # no duplicated steps
    steps = [s.step for s in board.Scalars("loss/train_step")]
    assert steps == sorted(set(steps)) and steps


def test_events_hold_the_metrics_hparams_and_figures(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    summary = train_dnn.main(args(fashion_dir, out))
    assert_events_equal_metrics(out)
    board = events(out)
    assert {"figures/learning_curves", "figures/confusion_matrix"} <= set(board.Tags()["images"])
    hparams = board.Scalars("hparam/test_acc")
    assert hparams[-1].value == pytest.approx(summary["test_acc"])


def test_resumed_run_continues_the_curves(fashion_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    interrupt_after_commit(monkeypatch, epoch=2)
    with pytest.raises(SystemExit):
        train_dnn.main(args(fashion_dir, out))
    monkeypatch.undo()
    train_dnn.main(["--resume", out, "--no-progress"])
    assert_events_equal_metrics(out)


def test_a_kill_between_the_events_and_the_commit_leaves_no_duplicate(fashion_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    real_commit = RunFolder.commit

    def die_before_commit(folder, state):
        if state["epoch"] == 2:
            raise Killed  # epoch 2's events are on disk, its commit is not
        real_commit(folder, state)
    monkeypatch.setattr(RunFolder, "commit", die_before_commit)
    with pytest.raises(Killed):
        train_dnn.main(args(fashion_dir, out))
    monkeypatch.undo()
    train_dnn.main([*args(fashion_dir, out), "--resume", out])
    assert_events_equal_metrics(out)


def test_a_kill_after_the_final_events_and_a_resume_write_them_once(fashion_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "run")

    def die_after_writing(log):
        log.writer.flush()
        raise Killed  # the hparams and figures are on disk, the process ends before it exits
    monkeypatch.setattr(TensorBoardLog, "close", die_after_writing)
    with pytest.raises(Killed):
        train_dnn.main(args(fashion_dir, out, "--epochs", "2"))
    monkeypatch.undo()
    train_dnn.main(["--resume", out, "--no-progress"])
    board = events(out)
    assert len(board.Scalars("hparam/test_acc")) == 1
    assert all(len(board.Images(tag)) == 1 for tag in ("figures/learning_curves", "figures/confusion_matrix"))
    assert_events_equal_metrics(out)


def test_no_tensorboard_writes_no_events(fashion_dir, tmp_path):
    out = str(tmp_path / "run")
    train_dnn.main(args(fashion_dir, out, "--no-tensorboard", "--epochs", "1"))
    assert not [name for name in os.listdir(out) if name.startswith("events.out.tfevents")]
