"""A resume is the same run, or it is refused: every setting that changes what is trained, named in
one line; a copied run folder resumes where it now is."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil

import pytest

import train_dnn
import train_rnn
from conftest import exit_code
from utils.config import TrainConfig
from utils.flags import field_metadata
from utils.flags import fields_with


def another_value(config_class, name, value):
    """A value of the field `name` other than `value` that its flag accepts (None: none to try)."""
    metadata = field_metadata(config_class, name)
    if metadata.get("choices"):
        return next(choice for choice in metadata["choices"] if choice != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        bounds = metadata.get("bounds", {})
        high = bounds.get("maximum", bounds.get("below", math.inf))
        changed = value + 1 if value + 1 < high or value + 1 == bounds.get("maximum") else (value + high) / 2
        return type(value)(changed) if isinstance(value, int) or changed == int(changed) else changed
    return "other" if isinstance(value, str) else None


@pytest.mark.parametrize("script, run", [(train_rnn, "rnn"), (train_dnn, "dnn")])
def test_a_resume_that_changes_any_training_setting_is_refused_naming_the_flag(script, run, runs, capsys):
    saved = json.loads(open(os.path.join(runs[run], "config.json")).read())
    config_class = next(value for value in vars(script).values()
                        if isinstance(value, type) and issubclass(value, TrainConfig) and value is not TrainConfig
                        and value.__module__ == script.__name__)
    tried = 0
    for spec in dataclasses.fields(config_class):
        value = another_value(config_class, spec.name, saved[spec.name])
        if spec.name in fields_with(config_class, "resumable") or value is None:
            continue
        flag = "--" + spec.name.replace("_", "-")
        argv = ["--resume", runs[run], *([flag] if value is True else [f"--no-{flag[2:]}"] if value is False
                                       else [flag, str(value)])]
        assert exit_code(script.main, argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and (flag in err[0] or "preset" in err[0]), (argv, err)
        tried += 1
    assert tried >= 20


def test_a_copied_run_folder_resumes_where_it_now_is(runs, tmp_path, monkeypatch):
    copy = tmp_path / "moved" / "rnn"
    shutil.copytree(runs["rnn"], copy)
    monkeypatch.chdir(tmp_path / "moved")
    summary = train_rnn.main(["--resume", "rnn", "--epochs", "2", "--data-dir", runs["trec"], "--no-progress"])
    assert summary["epochs_run"] == 2 and summary["run_dir"] == "rnn"
    assert json.loads((copy / "config.json").read_text())["resume"] == "rnn"


def test_resume_with_another_model_names_the_change(runs, capsys):
    assert exit_code(train_rnn.main, ["--resume", runs["rnn"], "--cell", "gru", "--data-dir", runs["trec"]]) == 2
    assert "cell 'lstm' -> 'gru'" in capsys.readouterr().err
