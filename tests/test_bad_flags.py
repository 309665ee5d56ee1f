"""Every script over a table of bad flags: one `error:` line, exit 2, nothing written; and how flags
that only matter with another one, presets and removed flags are checked."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

import train_cnn
import train_dnn
import train_rnn
import train_transformer
from conftest import assert_one_error_line
from utils.config import TrainConfig, parse_config
from utils.errors import ConfigError
from utils.flags import fields_with, option
from utils.storage.run_folder import load_saved_config


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
    (train_transformer, ["--pretrained", "m", "--num-layers", "3"], "--num-layers has no effect with --pretrained m"),
    (train_transformer, ["--pretrained", "m", "--embed-dim", "64"], "--embed-dim has no effect with --pretrained m"),
    (train_transformer, ["--freeze-encoder"], "--freeze-encoder True has no effect without --pretrained"),
    (train_transformer, ["--encoder-lr-scale", "0.5"], "--encoder-lr-scale 0.5 has no effect without --pretrained"),
    (train_transformer, ["--pretrained", "m", "--min-freq", "3"], "--min-freq has no effect with the tokenizer of m"),
    (train_rnn, ["--tokenizer", "m", "--min-freq", "3"], "--min-freq has no effect with the tokenizer of m"),
    (train_rnn, ["--tokenizer", "teacher"], "--tokenizer teacher reads the texts as the --teacher does: add --teacher"),
    (train_cnn, ["--random-erasing", "1.5"], "--random-erasing must be in [0, 1]"),
    (train_cnn, ["--dataset", "photos", "--channels", "2"], "--channels must be 1 (gray), 3 (RGB) or 0"),
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
    (tmp_path / "config.json").write_text(json.dumps({"knob": 4, "switch": False, "script": "knob"}))
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


def test_a_removed_flag_on_the_real_command_line_is_named(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["train_rnn.py", "--word-dropout", "0.1"])  # main() reads sys.argv
    assert_one_error_line(train_rnn.main, None, capsys, "--word-dropout was removed")


@pytest.mark.parametrize("script,argv", [(train_transformer, []), (train_transformer, ["--pretrained", "m"]),
                                         (train_cnn, ["--preset", "fast"]), (train_rnn, ["--teacher", "{tmp}/t.pt"])])
def test_help_shows_every_default_a_run_of_the_same_flags_uses(script, argv, tmp_path, capsys):
    """Implied presets included: a bare train_transformer.py trains 30 epochs, and --help says so."""
    (tmp_path / "t.pt").write_bytes(b"")  # validation asks only that a --teacher file exists
    argv = [word.format(tmp=tmp_path) for word in argv]
    with pytest.raises(SystemExit) as stop:
        script.main([*argv, "--help"])
    assert stop.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    config_class = next(value for name, value in vars(script).items() if name.endswith("Config")
                        and isinstance(value, type) and value.__module__ == script.__name__)
    config = parse_config(config_class, argv, "", script.PRESETS, saved_config=lambda run: {})
    for name in ("epochs", "lr", "batch_size"):
        flag = "--" + name.replace("_", "-")
        default_shown = shown.split(f" {flag} {name.upper()} ", 1)[1].split("(default: ", 1)[1].split(")")[0]
        assert default_shown == str(getattr(config, name)), flag


def test_what_a_resume_may_change_and_what_is_command_line_only_are_properties_of_the_flags():
    resumable, command_line_only = (fields_with(train_transformer.TransformerConfig, prop)
                                    for prop in ("resumable", "command_line_only"))
    unpublished = fields_with(train_transformer.TransformerConfig, "published", False)
    assert {"epochs", "patience", "device", "data_dir", "teacher", "gradient_checkpointing"} <= resumable
    assert not {"lr", "batch_size", "pretrained", "seed", "dataset"} & resumable
    assert {"data_dir", "device", "precision", "out_dir", "checkpoint", "source"} <= command_line_only
    assert not {"epochs", "teacher", "lr"} & command_line_only
    assert {"device", "out_dir", "progress"} <= unpublished and not {"lr", "data_dir", "pretrained"} & unpublished
