"""The run folder's commit protocol, proved on RunFolder itself with tiny states: a kill before any file
replacement, or a failure of any write, then a resume (or a new start where nothing was committed)
ends with exactly the files of the unbroken run."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import Killed
from utils.errors import WriteError
from utils.storage.checkpoint import load_checkpoint
from utils.storage.files import TEMP_FILE, read_json, read_jsonl, save_json
from utils.storage.run_folder import BEST, LAST, METRICS, SUMMARY, RunFolder

EPOCHS = 4
VAL_ACC = {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.7}  # epochs 1 and 2 are new bests; 4 ties 2 and is not


def record(epoch: int, history: list[dict]) -> dict:
    """A commit record of the state after `epoch`, made as a run makes it (weights that depend on the epoch)."""
    best_epoch = max((e for e in VAL_ACC if e <= epoch), key=lambda e: (VAL_ACC[e], -e))
    return {"model": {"w": torch.full((3,), float(epoch))}, "optimizer": {"state": epoch}, "epoch": epoch,
            "step": 10 * epoch, "history": history, "best_epoch": best_epoch, "best_val_acc": VAL_ACC[best_epoch],
            "stopped_early": False, "best_model": {"w": torch.full((3,), float(best_epoch))},
            "model_name": "tiny", "config": {"epochs": EPOCHS}}


def run(path: str, resume: bool) -> None:
    """A run's life in its folder: open (and repair), save the config, commit each epoch, write the summary."""
    with RunFolder(path) as folder:
        state = folder.open(resume=resume)
        history = list(state["history"]) if state else []
        folder.save_config({"epochs": EPOCHS, "script": "tiny"})  # as every run records its script
        for epoch in range(len(history) + 1, EPOCHS + 1):
            history.append({"epoch": epoch, "val_acc": VAL_ACC[epoch]})
            folder.commit(record(epoch, list(history)))
        save_json(folder.file(SUMMARY), {"epochs_run": EPOCHS})


def run_again(path: str) -> None:
    """What the user does after a kill: resume a folder that holds a commit, else start it again."""
    run(path, resume=os.path.isfile(os.path.join(path, LAST)))


def final_files(path: str) -> dict:
    """What the folder holds at the end, in plain values."""
    last, best = load_checkpoint(os.path.join(path, LAST)), load_checkpoint(os.path.join(path, BEST))
    return {"last": (last["epoch"], last["model"]["w"].tolist(), last["history"]),
            "best": (best["epoch"], best["model"]["w"].tolist(), "optimizer" in best),
            "metrics": read_jsonl(os.path.join(path, METRICS)), "summary": read_json(os.path.join(path, SUMMARY)),
            "files": sorted(os.listdir(path))}


@pytest.fixture
def unbroken(tmp_path, monkeypatch) -> tuple[dict, list[str]]:
    """The unbroken run's final files and the files it replaced, in order."""
    replaced, real_replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(os.path.basename(dst)),
                                                         real_replace(src, dst))[1])
    run(str(tmp_path / "unbroken"), resume=False)
    monkeypatch.setattr(os, "replace", real_replace)
    return final_files(str(tmp_path / "unbroken")), replaced


def test_the_unbroken_run_writes_each_view_only_when_it_changes(unbroken):
    files, replaced = unbroken
    assert replaced.count(LAST) == EPOCHS and replaced.count(BEST) == 2 and replaced[-1] == SUMMARY
    assert files["best"] == (2, [2.0] * 3, False) and files["last"][0] == EPOCHS
    assert [row["epoch"] for row in files["metrics"]] == [1, 2, 3, 4]


def test_a_kill_before_any_replacement_then_resume_ends_as_the_unbroken_run(unbroken, tmp_path, monkeypatch):
    files, replaced = unbroken
    real_replace = os.replace
    for k in range(1, len(replaced) + 1):
        path, calls = str(tmp_path / f"k{k}"), []

        def dying_replace(src, dst):
            calls.append(dst)
            if len(calls) == k:
                real_replace(src, f"{dst}.4242.deadbeef.tmp")  # what a kill leaves: a finished temp file
                raise Killed(f"killed before replacing {dst}")
            real_replace(src, dst)
        monkeypatch.setattr(os, "replace", dying_replace)
        with pytest.raises(Killed):
            run(path, resume=False)
        monkeypatch.setattr(os, "replace", real_replace)
        run_again(path)
        assert final_files(path) == files, f"k={k} ({os.path.basename(calls[-1])})"
        assert not [name for name in os.listdir(path) if TEMP_FILE.search(name)], f"k={k}: temp file left"


@pytest.mark.parametrize("failure", ["os.replace", "torch.save"])
def test_a_failed_write_keeps_the_previous_file_and_a_resume_ends_as_the_unbroken_run(failure, unbroken, tmp_path,
                                                                                       monkeypatch):
    files, replaced = unbroken
    target = (os, "replace") if failure == "os.replace" else (torch, "save")
    real = getattr(*target)
    writes = len(replaced) if failure == "os.replace" else replaced.count(LAST) + replaced.count(BEST)
    for k in range(1, writes + 1):
        path, calls = str(tmp_path / f"k{k}"), []

        def full_disk(*args, **kwargs):
            calls.append(args[1])
            if len(calls) == k:  # what each of them raises on a full disk
                raise (OSError(28, "No space left on device") if failure == "os.replace"
                       else RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
            return real(*args, **kwargs)
        monkeypatch.setattr(*target, full_disk)
        with pytest.raises(WriteError, match="the previous file is kept"):
            run(path, resume=False)
        monkeypatch.setattr(*target, real)
        written = sorted(os.listdir(path)) if os.path.isdir(path) else []  # a first write failing: no folder
        assert not [name for name in written if name.endswith(".tmp")], f"k={k}"
        if LAST in written:  # what is there is whole: one epoch's commit record
            kept = load_checkpoint(os.path.join(path, LAST))
            assert len(kept["history"]) == kept["epoch"] and kept["model"]["w"][0] == kept["epoch"], f"k={k}"
        run_again(path)
        assert final_files(path) == files, f"{failure} k={k}"


def test_views_that_lag_the_commit_record_are_repaired_and_noted(unbroken, tmp_path):
    files, _ = unbroken
    path = str(tmp_path / "run")
    run(path, resume=False)
    os.remove(os.path.join(path, BEST))
    with open(os.path.join(path, METRICS), "a") as f:
        f.write('{"epoch": 5, "trunc')
    folder = RunFolder(path)
    with folder:
        folder.open(resume=True)
    assert "repaired best.pt, metrics.jsonl" in folder.notes[0]
    assert final_files(path) == files
