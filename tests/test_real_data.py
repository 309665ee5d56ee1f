"""Checks on the real data sets in ../shared/data; skipped when that folder is absent."""
from __future__ import annotations

from collections import Counter

import pytest

import train_cnn
import train_rnn
from conftest import shared_data_or_skip
from data.fashion_mnist import load_fashion_mnist
from data.trec import load_trec_files

pytestmark = pytest.mark.slow


def test_fashion_mnist_decodes_as_published():
    splits = load_fashion_mnist(shared_data_or_skip("FashionMNIST", "raw"), allow_download=False).splits
    assert splits["train"].inputs.shape == (60000, 1, 28, 28) and splits["test"].inputs.shape == (10000, 1, 28, 28)
    assert splits["train"].labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert splits["test"].labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert set(Counter(splits["train"].labels.tolist()).values()) == {6000}


def test_trec_parses_as_published():
    splits = load_trec_files(shared_data_or_skip("TREC"), allow_download=False)
    assert len(splits["train"]) == 5452 and len(splits["test"]) == 500
    assert Counter(q.coarse for q in splits["train"]) == {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223,
                                                           "LOC": 835, "NUM": 896}
    assert len({q.fine for q in splits["train"]}) == 50
    assert "\u00f0" in splits["train"][65].text  # the one Latin-1 byte, line 66


def test_short_cnn_run_on_real_data(tmp_path):
    data_dir = shared_data_or_skip("FashionMNIST", "raw")
    summary = train_cnn.main(["--data-dir", data_dir, "--out-dir", str(tmp_path / "cnn"), "--epochs", "1",
                              "--limit-train", "3000", "--val-size", "1000", "--no-progress"])
    assert summary["test_acc"] > 0.65  # 3,000 images, one epoch: well above chance (0.1)


def test_short_lstm_run_on_real_data(tmp_path):
    data_dir = shared_data_or_skip("TREC")
    summary = train_rnn.main(["--data-dir", data_dir, "--out-dir", str(tmp_path / "rnn"), "--epochs", "1",
                              "--no-progress", "--no-tensorboard", "--hidden-size", "64"])
    assert summary["test_acc"] > 0.5  # one epoch: well above the majority class (0.28)
