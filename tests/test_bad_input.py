"""Every script and tool over a table of bad inputs: one `error:` line, the documented exit code, no
traceback. Plus the odd-but-valid inputs that must simply work."""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

import predict
import train_cnn
import train_dnn
import train_rnn
import train_transformer
from conftest import write_fashion_mnist, write_trec
from data.trec import read_label_file
from utils.report import cli as report
from utils.storage.checkpoint import load_checkpoint, save_checkpoint
from utils.storage.run_folder import load_saved_config
from utils.config import TrainConfig, option, parse_config
from utils.errors import ConfigError
from utils.serve.inputs import image_to_fashion_mnist, read_image


def exit_code(main, argv) -> int:
    """What the process would exit with: scripts raise SystemExit, tools return their code."""
    try:
        return main(argv) or 0
    except SystemExit as stop:
        return stop.code


def assert_one_error_line(main, argv, capsys, contains: str, code: int = 2) -> None:
    assert exit_code(main, argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and contains in err[0], err[0]
    assert "Traceback" not in err[0] and "weights_only=False" not in err[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data folders and one tiny finished run of each kind."""
    root = tmp_path_factory.mktemp("bad")
    fashion, trec = write_fashion_mnist(str(root / "f"), train_count=120, test_count=20), write_trec(str(root / "t"))
    dnn, rnn = str(root / "dnn"), str(root / "rnn")
    train_dnn.main(["--data-dir", fashion, "--out-dir", dnn, "--epochs", "1", "--val-size", "20", "--no-progress",
                    "--hidden1-size", "16", "--hidden2-size", "8"])
    train_rnn.main(["--data-dir", trec, "--out-dir", rnn, "--epochs", "1", "--val-size", "40", "--no-progress",
                    "--embed-dim", "8", "--hidden-size", "8"])
    return {"fashion": fashion, "trec": trec, "dnn": dnn, "rnn": rnn, "root": root}


FLAG_CASES = [  # (script, flags, what the one line must say)
    (train_cnn, ["--label-smoothing", "2"], "--label-smoothing must be in [0, 1], got 2.0"),
    (train_cnn, ["--conv1-channels", "0"], "--conv1-channels must be in [1, 4096]"),
    (train_cnn, ["--lr", "inf"], "--lr must be a finite number"),
    (train_cnn, ["--lr", "nan"], "--lr must be a finite number"),
    (train_cnn, ["--lr", "0"], "--lr must be > 0"),
    (train_cnn, ["--grad-clip", "nan"], "--grad-clip must be a finite number"),
    (train_cnn, ["--warmup-epochs", "-1"], "--warmup-epochs must be >= 0"),
    (train_cnn, ["--dropout", "1"], "--dropout must be in [0, 1)"),
    (train_cnn, ["--momentum", "1.5"], "--momentum must be in [0, 1)"),
    (train_cnn, ["--seed", "-1"], "--seed must be in [0, 4.29497e+09]"),
    (train_cnn, ["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (train_cnn, ["--optimizer", "nope"], "argument --optimizer: invalid choice: 'nope'"),
    (train_cnn, ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (train_dnn, ["--hidden1-size", "0"], "--hidden1-size must be in [1, 65536]"),
    (train_dnn, ["--batch-size", "0"], "--batch-size must be in [1, 1.04858e+06]"),
    (train_rnn, ["--embed-dim", "-3"], "--embed-dim must be in [1, 16384]"),
    (train_rnn, ["--word-dropout", "0.1"], "--word-dropout was removed: dropout on the embeddings"),
    (train_rnn, ["--activation=gelu"], "--activation was removed: only the image models have --activation"),
    (train_transformer, ["--batch-norm"], "--batch-norm was removed: only the image models have --batch-norm"),
    (train_rnn, ["--val-size", "0"], "--val-size must be >= 1"),
    (train_rnn, ["--max-length", "0"], "--max-length must be in [1, 100000]"),
    (train_rnn, ["--num-layers", "0"], "--num-layers must be in [1, 64]"),
    (train_rnn, ["--min-freq", "0"], "--min-freq must be >= 1"),
    (train_rnn, ["--resume", "/no/such/run"], "cannot resume: /no/such/run is not a run folder"),
    (train_rnn, ["--eval-only"], "--eval-only needs --checkpoint"),
    (train_cnn, ["--model", "resnet", "--depth", "10"], "--depth: a ResNet's depth must be 6n + 2"),
    (train_cnn, ["--tta"], "--tta has no effect with --model cnn: it is for --model resnet"),
    (train_cnn, ["--depth", "14"], "--depth has no effect with --model cnn: it is for --model resnet"),
    (train_cnn, ["--model", "resnet", "--conv1-channels", "8"], "--conv1-channels has no effect with --model resnet"),
    (train_cnn, ["--preset", "best", "--batch-norm"], "--batch-norm has no effect with --model resnet"),
    (train_rnn, ["--tokenizer", "teacher"], "--tokenizer teacher reads the texts as the --teacher does: add --teacher"),
    (train_cnn, ["--random-erasing", "1.5"], "--random-erasing must be in [0, 1]"),
    (train_cnn, ["--ema", "1"], "--ema must be in [0, 1)"),
    (train_rnn, ["--distill-weight", "2"], "--distill-weight must be in [0, 1]"),
    (train_rnn, ["--temperature", "0"], "--temperature must be > 0"),
    (train_rnn, ["--teacher", "/no/such/teacher.pt"], "--teacher /no/such/teacher.pt: no such file"),
    (train_rnn, ["--perturbation", "mask-ngram"], "--perturbation was removed: --perturbed-copies drop words"),
    (train_rnn, ["--perturbed-copies", "2", "--swap-neighbours", "m"], "--swap-neighbours was removed"),
    (train_rnn, ["--temperature", "2"], "--temperature 2.0 has no effect without --teacher: add --teacher"),
    (train_cnn, ["--distill-loss", "mse"], "--distill-loss was removed: the teacher's term is the KL divergence"),
    (train_cnn, ["--no-augment", "--crop-padding", "1"], "--crop-padding 1 has no effect without --augment: add"),
    (train_dnn, ["--no-augment", "--crop-padding", "1"], "--crop-padding 1 has no effect without --augment"),
    (train_dnn, ["--preset", "fast", "--crop-padding", "3"], "--crop-padding 3 has no effect without --augment"),
    (train_dnn, ["--crop-padding", "15"], "--crop-padding must be in [0, 14]"),
]


@pytest.mark.parametrize("script,flags,message", FLAG_CASES, ids=[" ".join(c[1]) for c in FLAG_CASES])
def test_bad_flags(script, flags, message, tmp_path, capsys):
    assert_one_error_line(script.main, ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o"), *flags],
                          capsys, message)
    assert not os.path.exists(tmp_path / "o")  # rejected before anything is written


@dataclass
class SwitchAndKnob(TrainConfig):
    """A config with a flag that only matters with another one."""

    switch: bool = option(False, "turns the knob on")
    knob: int = option(1, "with --switch: how far", needs="switch")


def test_a_flag_needs_its_switch_only_when_given_on_the_command_line(tmp_path):
    with pytest.raises(ConfigError, match="--knob 2 has no effect without --switch: add --switch"):
        parse_config(SwitchAndKnob, ["--knob", "2"], "")
    with pytest.raises(ConfigError, match="--knob 1 has no effect"):  # the default's value, but typed
        parse_config(SwitchAndKnob, ["--knob", "1"], "")
    assert parse_config(SwitchAndKnob, ["--knob", "2", "--switch"], "").knob == 2
    # a preset or a resumed run may set it with the switch off: only the user's own flags are checked
    assert parse_config(SwitchAndKnob, ["--preset", "far"], "", {"far": {"knob": 3}}).knob == 3
    (tmp_path / "config.json").write_text(json.dumps({"knob": 4, "switch": False}))
    assert parse_config(SwitchAndKnob, ["--resume", str(tmp_path)], "", saved_config=load_saved_config).knob == 4


def test_presets_with_augmentation_switched_off_by_hand_still_parse():
    for script, config_class in ((train_cnn, train_cnn.CNNConfig), (train_dnn, train_dnn.DNNConfig)):
        for preset in script.PRESETS:
            config = parse_config(config_class, ["--preset", preset, "--no-augment"], "", script.PRESETS)
            assert not config.augment


def test_help_names_the_ranges(capsys):
    with pytest.raises(SystemExit) as stop:
        train_rnn.main(["--help"])
    assert stop.value.code == 0
    assert "in [0, 1)" in capsys.readouterr().out


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
    for flags, change in ((["--val-size", "30"], "--val-size 40 -> 30"), (["--seed", "3"], "--seed 0 -> 3"),
                          (["--perturbed-copies", "2"], "--perturbed-copies 0 -> 2"),
                          (["--split-seed", "1"], "--split-seed -1 -> 1")):
        assert_one_error_line(train_rnn.main, ["--resume", runs["rnn"], "--data-dir", runs["trec"], *flags], capsys,
                              f"with other data ({change})")


def test_resume_with_another_model_names_the_change(runs, capsys):
    assert exit_code(train_rnn.main, ["--resume", runs["rnn"], "--cell", "gru", "--data-dir", runs["trec"]]) == 2
    assert "cell 'lstm' -> 'gru'" in capsys.readouterr().err


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
    assert_one_error_line(predict.main, [checkpoint, bomb], capsys, "pixels this tool reads")
    png_claiming_size(bomb, 8000, 8000)  # under Pillow's own limit, over ours
    assert_one_error_line(predict.main, [checkpoint, bomb], capsys, "is 8000x8000 pixels, more than")
    assert_one_error_line(predict.main, [checkpoint], capsys, "no image given")
    assert_one_error_line(predict.main, [checkpoint, "--top", "0", bomb], capsys, "--top: must be at least 1")
    assert_one_error_line(predict.main, [checkpoint, "--test-index", "99", "--data-dir", runs["fashion"]], capsys,
                          "--test-index 99 is outside 0..19")
    assert_one_error_line(predict.main, [str(tmp_path / "nothing.pt"), "x"], capsys, "not found")


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
    assert_one_error_line(report.main, [str(tmp_path / "nowhere")], capsys, "has no predictions.json")


def test_report_compare_into_a_new_folder(runs, tmp_path):
    target = tmp_path / "new" / "folder" / "compare.png"
    assert report.main([runs["rnn"], runs["dnn"], "--compare", str(target)]) == 0
    assert target.is_file()


# ---- odd inputs that must simply work ----------------------------------------------------------------

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


def test_trec_line_breaks_are_only_newlines(tmp_path):
    path = tmp_path / "q.label"
    path.write_bytes(b"HUM:ind Who is the ma\x85tre d' ?\nLOC:city Where is \x1c Paris ?\r\nNUM:date When ?\n")
    questions = read_label_file(str(path))
    assert [q.coarse for q in questions] == ["HUM", "LOC", "NUM"] and "\x85" in questions[0].text


def test_huge_question_is_cut_to_max_length(tmp_path, capsys):
    data = write_trec(str(tmp_path / "d"))
    with open(os.path.join(data, "TREC", "train_5500.label"), "a", encoding="latin-1") as f:
        f.write("DESC:def What is " + "very " * 200_000 + "long ?\n")  # 1 MB on one line
    summary = train_rnn.main(["--data-dir", data, "--out-dir", str(tmp_path / "o"), "--epochs", "1",
                              "--val-size", "40", "--no-progress", "--max-length", "32"])
    assert math.isfinite(summary["test_loss"])
    assert "cut 1 training question(s) to --max-length 32 tokens" in capsys.readouterr().out


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


def test_photo_of_a_dark_object_on_white_is_inverted():
    photo = Image.new("L", (50, 30), 255)
    photo.paste(0, (20, 10, 30, 20))
    drawn = image_to_fashion_mnist(photo)
    assert drawn[0, 0] == 0 and drawn[14, 14] > 240  # light object on black, as FashionMNIST draws them


def test_a_diverging_run_exits_3_in_one_line(runs, tmp_path, capsys):
    assert_one_error_line(train_dnn.main, ["--data-dir", runs["fashion"], "--out-dir", str(tmp_path / "o"),
                                           "--val-size", "20", "--no-progress", "--lr", "1e30", "--optimizer", "sgd"],
                          capsys, "loss became", code=3)
