"""SIGTERM (a scheduler, or torchrun ending the other processes) and Ctrl-C in every phase: one
`error:` line with exit 130 that says what is kept and how to go on, and nothing half-written."""
from __future__ import annotations

import os
import signal

import export
import train_dnn
import train_rnn
from conftest import exit_code, image_args, text_args
from utils.errors import one_line_errors, raise_interrupt


def terminate_when_called(monkeypatch, target: str, signum: int = signal.SIGTERM) -> None:
    """Make the function at `target` (module.name) receive `signum` when it is called."""
    def send_signal(*args, **kwargs):
        os.kill(os.getpid(), signum)
    monkeypatch.setattr(target, send_signal)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: interrupted"), err
    return err[0]


def test_sigterm_while_the_teacher_labels_a_new_run_leaves_no_folder(text_teacher, tmp_path, monkeypatch, capsys):
    data_dir, teacher = text_teacher
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(tmp_path / "cache"))  # so the teacher labels now
    terminate_when_called(monkeypatch, "utils.train.teacher_tables.evaluate")
    out = tmp_path / "run"
    assert exit_code(train_rnn.main, text_args(data_dir, str(out), "--teacher", teacher, "--preset", "none")) == 130
    line = one_error_line(capsys)
    assert "while setting up the run (stopped by SIGTERM)" in line and "run the same command again" in line
    assert not out.exists()  # it held only its lock


def test_ctrl_c_while_a_resumed_run_sets_up_keeps_its_epochs(fashion_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))
    monkeypatch.setattr("utils.train.training_run.build_training_state",
                        lambda *args: os.kill(os.getpid(), signal.SIGINT))
    assert exit_code(train_dnn.main, ["--resume", out, "--epochs", "2", "--no-progress"]) == 130
    line = one_error_line(capsys)
    assert "(Ctrl-C)" in line and "holds epoch 2. Resume with: python train_dnn.py --resume" in line


def test_sigterm_during_the_final_test_says_how_to_finish(fashion_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    terminate_when_called(monkeypatch, "utils.train.training_run.write_test_report")
    assert exit_code(train_dnn.main, image_args(fashion_dir, out)) == 130
    line = one_error_line(capsys)
    assert "during the final test (stopped by SIGTERM)" in line and "Resume with" in line
    assert not os.path.exists(os.path.join(out, "summary.json"))
    monkeypatch.undo()
    assert train_dnn.main(["--resume", out, "--no-progress"])["epochs_run"] == 2


def test_sigterm_during_export_leaves_neither_output_nor_temp_file(fashion_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    train_dnn.main(image_args(fashion_dir, out))
    terminate_when_called(monkeypatch, "export.verify")
    target = tmp_path / "exported" / "model.onnx"
    assert export.main([os.path.join(out, "best.pt"), "--out", str(target), "--data-dir", fashion_dir]) == 130
    assert "stopped by SIGTERM" in one_error_line(capsys)
    assert not target.parent.exists() or not os.listdir(target.parent)


def test_the_sigterm_handler_is_only_ours_while_a_script_runs():
    before = signal.getsignal(signal.SIGTERM)
    during = one_line_errors(lambda: signal.getsignal(signal.SIGTERM))
    assert during is raise_interrupt and signal.getsignal(signal.SIGTERM) is before
