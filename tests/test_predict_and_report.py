"""predict.py on saved checkpoints, the report redraw command, and the metrics behind reports."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import predict
import train_cnn
import train_rnn
from conftest import ROOT, assert_one_error_line
from utils.report import cli as report
from utils.report.runs import run_labels
from utils.storage.checkpoint import save_checkpoint
from utils.serve.inputs import image_to_fashion_mnist, read_image
from utils.report.metrics import classification_report, confusion_matrix


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained CNN run and one tiny trained LSTM run."""
    from conftest import write_fashion_mnist, write_trec
    root = tmp_path_factory.mktemp("runs")
    fashion, trec = write_fashion_mnist(str(root / "f")), write_trec(str(root / "t"))
    cnn, rnn = str(root / "cnn"), str(root / "rnn")
    train_cnn.main(["--data-dir", fashion, "--out-dir", cnn, "--epochs", "1", "--val-size", "50", "--no-progress"])
    train_rnn.main(["--data-dir", trec, "--out-dir", rnn, "--epochs", "6", "--val-size", "40", "--lr", "5e-3",
                    "--batch-size", "16", "--no-progress"])
    return {"cnn": cnn, "rnn": rnn, "fashion": fashion}


def test_predict_questions_as_json(runs, capsys):
    checkpoint = os.path.join(runs["rnn"], "best.pt")
    assert predict.main([checkpoint, "Where is paris ?", "Who invented radio ?", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["input"] for row in rows] == ["Where is paris ?", "Who invented radio ?"]
    assert [row["label"] for row in rows] == ["LOC", "HUM"]
    for row in rows:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)


def test_predict_questions_from_stdin(runs, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"When was tea born ?\n\nWhat does nasa stand for ?\n")))
    assert predict.main([os.path.join(runs["rnn"], "best.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("When was tea born ?: NUM")


def test_predict_empty_question_is_an_error(runs, capsys):
    assert predict.main([os.path.join(runs["rnn"], "best.pt"), "   "]) == 2
    assert capsys.readouterr().err.strip() == "error: empty question: give some words to classify"


def test_predict_image_files_any_size_and_colour(runs, tmp_path, capsys):
    path = str(tmp_path / "photo.jpg")
    Image.new("RGB", (90, 60), (250, 250, 250)).save(path)
    assert predict.main([os.path.join(runs["cnn"], "best.pt"), path, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["input"] == path and len(row["probabilities"]) == 10


def test_predict_test_index(runs, capsys):
    assert predict.main([os.path.join(runs["cnn"], "best.pt"), "--test-index", "3", "--data-dir", runs["fashion"]]) == 0
    assert capsys.readouterr().out.startswith("test[3] (true: ")


@pytest.mark.parametrize("make_input,message", [
    (lambda tmp: str(tmp / "missing.png"), "cannot read image"),
    (lambda tmp: (tmp / "text.png").write_text("not an image") and str(tmp / "text.png"), "cannot read image"),
])
def test_predict_unreadable_image(runs, tmp_path, capsys, make_input, message):
    assert predict.main([os.path.join(runs["cnn"], "best.pt"), make_input(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_predict_rejects_foreign_checkpoint(tmp_path, capsys):
    path = str(tmp_path / "other.pt")
    save_checkpoint(path, {"weights": torch.zeros(3)})
    assert predict.main([path, "hello"]) == 2
    assert "not a checkpoint of this repository" in capsys.readouterr().err


def test_photo_is_drawn_like_fashion_mnist():
    photo = np.full((100, 50, 3), 255, dtype=np.uint8)
    photo[20:80, 10:40] = 0  # a dark object on a white background
    array = image_to_fashion_mnist(Image.fromarray(photo))
    assert array.shape == (28, 28) and array.dtype == np.uint8
    assert array[14, 14] > 200 and array[0, 0] == 0  # object light, background black
    assert array[:, :6].max() == 0  # aspect kept: narrow image centred with black sides


def test_report_command_redraws_from_saved_files(runs, tmp_path, capsys):
    for name in ("curves.png", "confusion_matrix.png", "mistakes.png", "report.json"):
        os.remove(os.path.join(runs["cnn"], name))
    compare = str(tmp_path / "compare.png")
    assert report.main([runs["cnn"], runs["rnn"], "--compare", compare]) == 0
    for name in ("curves.png", "confusion_matrix.png", "mistakes.png", "report.json"):
        assert os.path.getsize(os.path.join(runs["cnn"], name)) > 0
    assert os.path.getsize(compare) > 0 and os.path.exists(os.path.join(runs["rnn"], "mistakes.txt"))
    assert "weighted avg" in capsys.readouterr().out


def test_report_command_rejects_a_non_run(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "no predictions.json" in capsys.readouterr().err


def test_classification_report_values():
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    matrix = confusion_matrix(targets, predictions, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    result = classification_report(matrix, ["a", "b", "c"])
    assert result["classes"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                      "support": 3}
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["macro avg"]["recall"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert result["weighted avg"]["recall"] == pytest.approx(4 / 6)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.zeros((28, 28), dtype=np.uint16)  # a bright gradient on black: no inversion either way
    ramp[4:24, 4:24] = np.linspace(20_000, 65_535, 400).reshape(20, 20).astype(np.uint16)
    path16, path8 = str(tmp_path / "16.png"), str(tmp_path / "8.png")
    Image.fromarray(ramp).save(path16)
    Image.fromarray((ramp // 257).astype(np.uint8)).save(path8)
    assert Image.open(path16).mode.startswith("I")
    difference = read_image(path16).astype(int) - read_image(path8).astype(int)
    assert np.abs(difference).max() <= 1  # the same picture, up to rounding
    assert read_image(path16).max() > 200  # not clipped to white


def test_images_of_any_mode_and_shape(tmp_path):
    for mode, size in (("RGBA", (40, 10)), ("P", (1, 1)), ("1", (3, 300)), ("F", (28, 28)), ("CMYK", (28, 28))):
        path = str(tmp_path / f"{mode}.tiff")
        Image.new(mode, size).save(path)
        assert read_image(path).shape == (28, 28), mode


def test_photo_of_a_dark_object_on_white_is_inverted():
    photo = Image.new("L", (50, 30), 255)
    photo.paste(0, (20, 10, 30, 20))
    drawn = image_to_fashion_mnist(photo)
    assert drawn[0, 0] == 0 and drawn[14, 14] > 240  # light object on black, as FashionMNIST draws them


def test_report_rejects_damaged_files(runs, tmp_path, capsys):
    damaged = tmp_path / "run"
    damaged.mkdir()
    original = open(os.path.join(runs["rnn"], "predictions.json")).read()
    (damaged / "predictions.json").write_text(original[: len(original) // 2])
    assert_one_error_line(report.main, [str(damaged)], capsys, "predictions.json cannot be read")
    (damaged / "predictions.json").write_text(json.dumps({**json.loads(original), "targets": [99]}))
    assert_one_error_line(report.main, [str(damaged)], capsys, "is not a predictions file of this repository")
    (damaged / "predictions.json").write_text(original)
    (damaged / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.5}\n{"epoch": 2, "tra')
    assert_one_error_line(report.main, [str(damaged)], capsys, "metrics.jsonl, line 2: not JSON")
    for rows, message in (('[1, 2]\n', "line 1: not a JSON object"), ('{"train_loss": 0.5}\n', "line 1: not an epoch's"),
                          ('{"epoch": 1, "val_acc": "high"}\n', "line 1: not an epoch's metrics")):
        (damaged / "metrics.jsonl").write_text(rows)
        assert_one_error_line(report.main, [str(damaged)], capsys, message)
    (damaged / "metrics.jsonl").unlink()
    saved = json.loads(original)
    for broken in ({**saved, "class_names": list(range(len(saved["class_names"])))},  # integers, not names
                   {**saved, "mistakes": [{"index": 0}]}, {**saved, "mistakes": ["wrong"]}):
        (damaged / "predictions.json").write_text(json.dumps(broken))
        assert_one_error_line(report.main, [str(damaged)], capsys, "is not a predictions file of this repository")
    assert_one_error_line(report.main, [str(tmp_path / "nowhere")], capsys, "has no predictions.json")


def test_report_compare_into_a_new_folder(runs, tmp_path):
    target = tmp_path / "new" / "folder" / "compare.png"
    assert report.main([runs["rnn"], runs["cnn"], "--compare", str(target)]) == 0
    assert target.is_file()


def test_report_compare_keeps_runs_whose_folders_share_a_name(runs, tmp_path, monkeypatch):
    for place in ("a", "b"):
        shutil.copytree(runs["rnn"], tmp_path / place / "run")
    drawn = {}
    monkeypatch.setattr("utils.report.plots.plot_curves", lambda histories, path: drawn.__setitem__(path, histories))
    assert report.main([str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run"), "--compare",
                        str(tmp_path / "c.png")]) == 0
    assert len(drawn[str(tmp_path / "c.png")]) == 2 and run_labels(["x/run", "y/run", "z/other", "x/run"]) == [
        "x/run (1)", "y/run", "other", "x/run (4)"]


def test_predict_ends_quietly_when_its_reader_goes_away(runs, tmp_path):
    """`python predict.py ... | head -n 1`: once head has its line, predict stops without a traceback."""
    questions = tmp_path / "questions.txt"
    questions.write_text("Who wrote Hamlet ?\n" * 5000)  # more answers than a pipe holds
    with open(questions, "rb") as stdin:
        child = subprocess.Popen([sys.executable, "predict.py", os.path.join(runs["rnn"], "best.pt")], cwd=ROOT,
                                 stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = child.stdout.readline()
        child.stdout.close()  # what head does after its line
        stderr = child.stderr.read()
        child.wait(timeout=60)
    assert first.startswith(b"Who wrote Hamlet ?: ")
    assert stderr == b"" and child.returncode == 141  # 128 + SIGPIPE, as a shell reports such a stop
