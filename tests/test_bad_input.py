"""Every script and tool over tables of bad data, run folders, checkpoints, images and files: one
`error:` line, the documented exit code, no traceback. Plus the odd-but-valid inputs that must simply work."""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import struct
import zlib

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

import predict
import train_cnn
import train_dnn
import train_rnn
from conftest import assert_one_error_line, exit_code
from tiny_data import write_fashion_mnist, write_trec
from data.trec import read_label_file
from utils.storage.checkpoint import load_checkpoint, save_checkpoint


def corrupt_gzip(path: str) -> None:
    content = bytearray(open(path, "rb").read())
    content[20:40] = b"\xff" * 20  # inside the deflate stream
    open(path, "wb").write(bytes(content))


def truncate(path: str, keep: int) -> None:
    content = open(path, "rb").read()
    open(path, "wb").write(content[:keep])


DATA_CASES = {  # name -> (script, how to break a fresh copy of the data, what the line must say)
    "deflate stream corrupt": (train_dnn, lambda d: corrupt_gzip(f"{d}/FashionMNIST/raw/train-images-idx3-ubyte.gz"),
                               "train-images-idx3-ubyte.gz: cannot read"),
    "gzip truncated": (train_dnn, lambda d: truncate(f"{d}/FashionMNIST/raw/t10k-labels-idx1-ubyte.gz", 30),
                       "t10k-labels-idx1-ubyte.gz: cannot read"),
    "idx bad magic": (train_dnn, lambda d: open(f"{d}/FashionMNIST/raw/t10k-labels-idx1-ubyte.gz", "wb").write(
        gzip.compress(b"\x00\x00\x09\x01" + bytes(8))), "wrong magic number"),
    "trec bad line": (train_rnn, lambda d: open(f"{d}/TREC/TREC_10.label", "a", encoding="latin-1").write(
        "this line has no label\n"), "TREC_10.label, line 61: expected 'COARSE:fine question ...'"),
    "trec binary": (train_rnn, lambda d: open(f"{d}/TREC/train_5500.label", "wb").write(bytes(range(128, 256)) * 2 + b"\n"),
                    "train_5500.label, line 1"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(case, tmp_path, capsys):
    script, damage, message = DATA_CASES[case]
    data = write_fashion_mnist(str(tmp_path / "d")) if script is train_dnn else write_trec(str(tmp_path / "d"))
    damage(data)
    assert_one_error_line(script.main, ["--data-dir", data, "--out-dir", str(tmp_path / "o"), "--val-size", "20",
                                        "--no-progress"], capsys, message)


def test_bad_run_folders(runs, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    common = ["--data-dir", runs["fashion"], "--val-size", "20", "--epochs", "1", "--no-progress"]
    assert_one_error_line(train_dnn.main, [*common, "--out-dir", str(a_file)], capsys, "is a file, not a folder")
    assert_one_error_line(train_dnn.main, [*common, "--out-dir", str(a_file / "sub")], capsys,
                          "cannot create the run folder")
    assert_one_error_line(train_dnn.main, [*common, "--out-dir", "/proc/no-run-here"], capsys,
                          "cannot create the run folder")
    assert_one_error_line(train_cnn.main, ["--resume", runs["rnn"]], capsys,
                          f"{runs['rnn']} is a run of train_rnn.py: resume it with python train_rnn.py --resume")
    assert_one_error_line(train_rnn.main, ["--resume", runs["rnn"], "--cell", "gru", "--data-dir", runs["trec"]],
                          capsys, "cannot resume")
    assert_one_error_line(train_rnn.main, ["--resume", runs["rnn"], "--out-dir", str(tmp_path / "elsewhere")],
                          capsys, "--resume RUN continues in RUN")


def broken_checkpoints(good: str, folder) -> dict[str, str]:
    """Files that are not usable checkpoints, each in its own way."""
    state = load_checkpoint(good)
    paths = {}

    def save(name: str, obj) -> None:
        paths[name] = str(folder / f"{name}.pt")
        save_checkpoint(paths[name], obj)
    paths["garbage"] = str(folder / "garbage.pt")
    open(paths["garbage"], "wb").write(b"\x80\x02not a checkpoint")
    paths["truncated"] = str(folder / "truncated.pt")
    open(paths["truncated"], "wb").write(open(good, "rb").read()[:500])
    paths["pickled object"] = str(folder / "object.pt")
    torch.save({"model": io.BytesIO(b"x")}, paths["pickled object"])  # not loadable with weights_only
    save("a list", [1, 2, 3])
    save("fewer class names", {**state, "class_names": state["class_names"][:-1]})
    save("other model size", {**state, "model_kwargs": {**state["model_kwargs"], "hidden_size": 3}})
    save("no tokenizer", {**state, "meta": {}})
    save("unknown task", {**state, "task": "audio"})
    words = state["meta"]["tokenizer"]
    save("short vocabulary", {**state, "meta": {**state["meta"], "tokenizer": {**words, "vocabulary": words["vocabulary"][:5]}}})
    save("vocabulary without <unk>", {**state, "meta": {**state["meta"], "tokenizer": {**words, "vocabulary": ["<pad>"]}}})
    save("malformed subword tokenizer", {**state, "meta": {"tokenizer": {"kind": "subword", "json": "{", "pad_id": 0}}})
    subword = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "who": 2}, unk_token="[UNK]")).to_str()
    save("pad id outside the tokenizer", {**state, "meta": {"tokenizer": {"kind": "subword", "json": subword,
                                                                          "pad_id": 7}}})
    for name, max_length in (("max_length as text", "64"), ("max_length zero", 0), ("max_length fraction", 6.5)):
        save(name, {**state, "meta": {**state["meta"], "max_length": max_length}})
    save("nan weights", {**state, "model": {key: torch.full_like(value, math.nan) if value.is_floating_point()
                                            else value for key, value in state["model"].items()}})
    return paths


def test_predict_rejects_every_broken_checkpoint_in_one_line(runs, tmp_path, capsys):
    for name, path in broken_checkpoints(os.path.join(runs["rnn"], "best.pt"), tmp_path).items():
        assert exit_code(predict.main, [path, "Who wrote Hamlet ?"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and path in err[0], (name, err)
        assert "weights_only=False" not in err[0]


def test_eval_only_rejects_a_broken_checkpoint(runs, tmp_path, capsys):
    path = broken_checkpoints(os.path.join(runs["rnn"], "best.pt"), tmp_path)["other model size"]
    assert_one_error_line(train_rnn.main, ["--data-dir", runs["trec"], "--eval-only", "--checkpoint", path,
                                           "--out-dir", str(tmp_path / "e")], capsys, "does not describe a model")


def png_claiming_size(path: str, width: int, height: int) -> None:
    """A PNG whose header claims `width` x `height` pixels (a decompression bomb's calling card)."""
    Image.new("L", (1, 1)).save(path)
    content = bytearray(open(path, "rb").read())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(content[24:29])
    content[12:29] = header
    content[29:33] = struct.pack(">I", zlib.crc32(header))
    open(path, "wb").write(bytes(content))


def test_predict_bad_images_and_arguments(runs, tmp_path, capsys):
    checkpoint = os.path.join(runs["dnn"], "best.pt")
    not_image, bomb = tmp_path / "notes.png", str(tmp_path / "bomb.png")
    not_image.write_text("hello")
    png_claiming_size(bomb, 14000, 14000)
    assert_one_error_line(predict.main, [checkpoint, str(not_image)], capsys, "cannot read image")
    assert_one_error_line(predict.main, [checkpoint, str(tmp_path / "missing.png")], capsys, "cannot read image")
    os.mkfifo(tmp_path / "pipe.png")  # reading it would wait for a writer for ever
    assert_one_error_line(predict.main, [checkpoint, str(tmp_path / "pipe.png")], capsys, "not a regular file")
    (tmp_path / "empty").mkdir()
    assert_one_error_line(predict.main, [checkpoint, str(tmp_path / "empty")], capsys, "holds no image files")
    assert_one_error_line(predict.main, [checkpoint, bomb], capsys, "pixels this project reads")
    png_claiming_size(bomb, 8000, 8000)  # under Pillow's own limit, over ours
    assert_one_error_line(predict.main, [checkpoint, bomb], capsys, "is 8000x8000 pixels, more than")
    assert_one_error_line(predict.main, [checkpoint], capsys, "no image given")
    assert_one_error_line(predict.main, [checkpoint, "--top", "0", bomb], capsys, "--top: must be at least 1")
    assert_one_error_line(predict.main, [checkpoint, "--test-index", "99", "--data-dir", runs["fashion"]], capsys,
                          "--test-index 99 is outside 0..19")
    assert_one_error_line(predict.main, [str(tmp_path / "nothing.pt"), "x"], capsys, "not found")


# ---- odd inputs that must simply work ----------------------------------------------------------------


def test_trec_line_breaks_are_only_newlines(tmp_path):
    path = tmp_path / "q.label"
    path.write_bytes(b"HUM:ind Who is the ma\x85tre d' ?\nLOC:city Where is \x1c Paris ?\r\nNUM:date When ?\n")
    questions = read_label_file(str(path))
    assert [q.coarse for q in questions] == ["HUM", "LOC", "NUM"] and "\x85" in questions[0].text


def test_huge_question_is_cut_to_max_length(tmp_path, capsys):
    data = write_trec(str(tmp_path / "d"))
    with open(os.path.join(data, "TREC", "TREC_10.label"), "a", encoding="latin-1") as f:
        f.write("DESC:def What is " + "very " * 200_000 + "long ?\n")  # 1 MB on one line
    summary = train_rnn.main(["--data-dir", data, "--out-dir", str(tmp_path / "o"), "--epochs", "1",
                              "--val-size", "40", "--no-progress", "--max-length", "32"])
    assert math.isfinite(summary["test_loss"])
    assert "cut 1 test text(s) to --max-length 32 tokens" in capsys.readouterr().out


def test_a_question_argument_that_is_not_utf8_is_read_as_latin1(runs, capsys):
    not_utf8 = os.fsdecode(b"caf\xe9 ?")  # how Python holds such an argument
    assert predict.main([os.path.join(runs["rnn"], "best.pt"), "--json", not_utf8]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == "café ?"


def test_predict_options_between_inputs_and_odd_stdin(runs, monkeypatch, capsys):
    checkpoint = os.path.join(runs["rnn"], "best.pt")
    assert predict.main([checkpoint, "--top", "2", "Who wrote Hamlet ?", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == "Who wrote Hamlet ?"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Where is Z\xfcrich ?\n\xff\xfe bad bytes\n")))
    assert predict.main([checkpoint]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Where is Z\xfcrich ?:")


def test_json_output_stays_valid_with_non_finite_numbers(runs, monkeypatch, capsys):
    monkeypatch.setattr("predict.class_probabilities", lambda model, inputs: torch.full((1, 6), float("nan")))
    assert predict.main([os.path.join(runs["rnn"], "best.pt"), "Who ?", "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text  # json.dumps writes NaN, which is not JSON
    assert all(value is None for value in json.loads(text)["probabilities"].values())


def test_a_diverging_run_exits_3_in_one_line(runs, tmp_path, capsys):
    assert_one_error_line(train_dnn.main, ["--data-dir", runs["fashion"], "--out-dir", str(tmp_path / "o"),
                                           "--val-size", "20", "--no-progress", "--lr", "1e30", "--optimizer", "sgd"],
                          capsys, "loss became", code=3)


def test_a_validation_split_as_large_as_the_data_is_one_line(runs, tmp_path, capsys):
    assert_one_error_line(train_dnn.main, ["--data-dir", runs["fashion"], "--out-dir", str(tmp_path / "o"),
                                           "--val-size", "120"], capsys, "--val-size 120 leaves no training examples")
    assert not os.path.exists(tmp_path / "o")
