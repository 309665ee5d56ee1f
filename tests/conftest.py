"""Shared fixtures: tiny data sets written in the real file formats into a temp folder."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")

torch.set_num_threads(1)  # tiny models: threads only add overhead and run-to-run noise


from tiny_data import write_fashion_mnist, write_trec


def built_once(tmp_path_factory, worker_id: str, name: str, build):
    """`build(folder)` once for the whole test session: with pytest-xdist the first worker that asks
    builds it under a lock and records its (JSON) result; the others wait and reuse folder and result."""
    from filelock import FileLock

    if worker_id == "master":  # one process: nothing to share
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # this session's, shared by its workers
    done = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            (root / name).mkdir()
            done.write_text(json.dumps(build(root / name)))
    return json.loads(done.read_text())


CACHE_ENV = ("TEACHER_CACHE_DIR", "IMAGE_CACHE_DIR", "XDG_CACHE_HOME")


@pytest.fixture(scope="session", autouse=True)
def caches_in_a_temp_folder(tmp_path_factory):
    """Every cache this project writes (teacher tables, decoded image folders, anything under the user's
    cache folder) goes to this session's temp folder, never the user's; the environment is restored after."""
    saved = {name: os.environ.get(name) for name in CACHE_ENV}
    for name in CACHE_ENV:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def fashion_dir(tmp_path) -> str:
    """A data folder holding a tiny, separable FashionMNIST in the real IDX .gz format."""
    return write_fashion_mnist(str(tmp_path / "data"))


@pytest.fixture
def trec_dir(tmp_path) -> str:
    """A data folder holding tiny TREC label files."""
    return write_trec(str(tmp_path / "data"))


def shared_data_or_skip(*parts: str) -> str:
    """The path under ../shared/data, or skip the test when it is not there."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory, worker_id) -> str:
    """A folder holding a tiny pretrained BERT (config, weights, tokenizer)."""
    from tiny_models import write_tiny_pretrained

    return built_once(tmp_path_factory, worker_id, "tiny-bert", lambda folder: write_tiny_pretrained(str(folder)))


SHARED_MODELS = os.path.join(ROOT, "..", "shared", "models")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def torchrun(args: list[str], timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    """Run a script in 2 CPU processes (gloo) with torchrun, one thread each, `env` added to the environment."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **env}
    return subprocess.run(TORCHRUN + args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment)


class Killed(BaseException):
    """Stands for kill -9 at that instant: nothing in a run catches a BaseException of this kind."""


def interrupt_after_commit(monkeypatch, epoch: int) -> None:
    """Make a run receive SIGINT (like Ctrl-C) right after it commits `epoch`."""
    from utils.storage.run_folder import RunFolder

    real_commit = RunFolder.commit

    def commit_then_interrupt(folder, state):
        real_commit(folder, state)
        if state["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(RunFolder, "commit", commit_then_interrupt)


def image_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    """Flags of a quick image run (2 epochs) on a tiny data folder."""
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "2", "--val-size", "40", "--batch-size", "32",
            "--no-progress", "--no-tensorboard", *extra]


def text_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    """Flags of a quick text run (2 epochs) on a tiny data folder."""
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "2", "--val-size", "40", "--batch-size", "16",
            "--no-progress", "--no-tensorboard", *extra]


@pytest.fixture(scope="session")
def image_teacher(tmp_path_factory, worker_id) -> tuple[str, str]:
    """(data folder, best.pt of a tiny ResNet with flip averaging trained on it)."""
    import train_cnn

    def build(folder) -> list[str]:
        data_dir = write_fashion_mnist(str(folder / "data"))
        train_cnn.main(image_args(data_dir, str(folder / "teacher"), "--model", "resnet", "--width", "4", "--depth",
                                  "8", "--tta", "--epochs", "3", "--lr", "3e-3"))
        return [data_dir, str(folder / "teacher" / "best.pt")]
    return tuple(built_once(tmp_path_factory, worker_id, "image_teacher", build))


@pytest.fixture(scope="session")
def text_teacher(tmp_path_factory, worker_id) -> tuple[str, str]:
    """(data folder, best.pt of a small Transformer trained well on the synthetic questions)."""
    import train_transformer

    def build(folder) -> list[str]:
        data_dir = write_trec(str(folder / "data"))
        train_transformer.main(text_args(data_dir, str(folder / "teacher"), "--epochs", "10", "--embed-dim", "32",
                                         "--ff-dim", "64", "--lr", "3e-3", "--warmup-epochs", "1"))
        return [data_dir, str(folder / "teacher" / "best.pt")]
    return tuple(built_once(tmp_path_factory, worker_id, "text_teacher", build))


@contextlib.contextmanager
def said_lines():
    """The lines the project says (utils.messages.MESSAGES) inside the block, as a list."""
    from utils.messages import MESSAGES

    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    MESSAGES.addHandler(handler)
    level, MESSAGES.level = MESSAGES.level, logging.INFO
    try:
        yield said
    finally:
        MESSAGES.removeHandler(handler)
        MESSAGES.setLevel(level)


def saved_accuracy(run_dir: str) -> float:
    """The share of right answers in a run's predictions.json: what its test accuracy must be."""
    with open(os.path.join(run_dir, "predictions.json"), encoding="utf-8") as file:
        saved = json.load(file)
    return sum(p == t for p, t in zip(saved["predictions"], saved["targets"])) / len(saved["targets"])


def same_weights(a: dict, b: dict) -> bool:
    """True when two state dicts hold the same names and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


@pytest.fixture(scope="session")
def runs(tmp_path_factory, worker_id):
    """Data folders and one tiny finished run of each kind (shared: tests may only read them or copy them)."""
    import train_dnn
    import train_rnn

    def build(root) -> dict[str, str]:
        fashion, trec = write_fashion_mnist(str(root / "f"), train_count=120, test_count=20), write_trec(str(root / "t"))
        dnn, rnn = str(root / "dnn"), str(root / "rnn")
        train_dnn.main(["--data-dir", fashion, "--out-dir", dnn, "--epochs", "1", "--val-size", "20", "--no-progress",
                        "--hidden1-size", "16", "--hidden2-size", "8"])
        train_rnn.main(["--data-dir", trec, "--out-dir", rnn, "--epochs", "1", "--val-size", "40", "--no-progress",
                        "--embed-dim", "8", "--hidden-size", "8"])
        return {"fashion": fashion, "trec": trec, "dnn": dnn, "rnn": rnn, "root": str(root)}
    found = built_once(tmp_path_factory, worker_id, "runs", build)
    return {**found, "root": pathlib.Path(found["root"])}
