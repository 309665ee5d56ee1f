"""Export a trained checkpoint to ONNX for serving, verified against PyTorch before it is reported done.

    python export.py runs/cnn-.../best.pt                       # writes runs/cnn-.../best.onnx
    python export.py runs/rnn-.../best.pt --out lstm.onnx --data-dir ../shared/data

The file has a dynamic batch size (and question length), and carries as metadata the class names,
the task and what turns raw input into model input (image normalisation, vocabulary or tokenizer).
onnxruntime then runs it on test examples of the run's data set (generated ones when the data is
not there) at batch sizes 1, 7 and 64, and the command prints the largest logit difference and the
share of equal predictions; beyond 1e-4 it fails. `predict.py model.onnx ...` serves the file.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np
import torch

from data import DataError
from data.bundle import kind_of
from data.images import image_shape
from data.tokenization import tokenizer_from_meta
from data.fashion_mnist import load_fashion_mnist
from data.trec import load_trec_files
from utils.config import default_data_dir
from utils.errors import ConfigError, InputError, run_tool
from utils.flags import ArgumentParser
from utils.serve.inputs import image_inputs, question_inputs
from utils.serve.onnx_export import export, verify
from utils.serve.predictor import load_for_inference
from utils.storage.files import atomic_write


def example_inputs(checkpoint: dict[str, Any], data_dir: str, count: int) -> tuple[Any, str]:
    """Model inputs to check the export on: test examples of a built-in data set, else generated ones."""
    meta, rng, task = checkpoint["meta"], np.random.default_rng(0), checkpoint["task"]
    try:
        if task == "trec":
            questions = [q.text for q in load_trec_files(data_dir, allow_download=False)["test"][:count]]
            return question_inputs(questions, meta), f"{len(questions)} TREC test questions"
        if task == "fashion_mnist":
            images = load_fashion_mnist(data_dir, allow_download=False)["test"].images[:count].numpy()
            return image_inputs(list(images), meta), f"{len(images)} FashionMNIST test images"
    except DataError:
        pass
    where = f"no data in {data_dir}" if task in ("trec", "fashion_mnist") else "not read from the data set"
    if kind_of(task) == "text":
        lengths = torch.from_numpy(rng.integers(1, min(meta.get("max_length", 64), 40) + 1, count))
        vocab_size = tokenizer_from_meta(meta).vocab_size
        token_ids = torch.from_numpy(rng.integers(2, vocab_size, (count, int(lengths.max()))))
        token_ids = token_ids * (torch.arange(token_ids.size(1))[None, :] < lengths[:, None])
        return (token_ids, lengths), f"{count} generated texts ({where})"
    images = rng.integers(0, 256, (count, int(meta.get("channels", 1)), *image_shape(meta)), dtype=np.uint8)
    return image_inputs(list(images), meta), f"{count} generated images ({where})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a best.pt or last.pt of a training run")
    parser.add_argument("--out", default="", help="the .onnx file to write (default: beside the checkpoint)")
    parser.add_argument("--data-dir", default="", help="data folder for the check (default: $CLASSIFY_DATA_DIR "
                        "or ./datasets; generated inputs when absent)")
    parser.add_argument("--examples", type=int, default=256, help="how many examples to check (at least 64)")
    args = parser.parse_intermixed_args(argv)
    if args.examples < 64:
        parser.error(f"argument --examples: must be at least 64, got {args.examples}")
    return args


def output_path(checkpoint_path: str, out: str) -> str:
    """Where the export goes: `out`, else beside the checkpoint; never the checkpoint itself or another
    non-.onnx file."""
    out = out or os.path.splitext(checkpoint_path)[0] + ".onnx"
    if not out.endswith(".onnx") or os.path.realpath(out) == os.path.realpath(checkpoint_path):
        raise ConfigError(f"--out {out}: give a new .onnx file, not the checkpoint or another kind of file")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export, verify and report one checkpoint; returns the verification result. The file appears at
    --out only once it is verified (a kill or a failure leaves the previous file)."""
    if args.checkpoint.endswith(".onnx"):
        raise InputError(f"{args.checkpoint} is already an ONNX file: export.py takes a checkpoint (best.pt)")
    out = output_path(args.checkpoint, args.out)
    model, checkpoint = load_for_inference(args.checkpoint)
    inputs, described = example_inputs(checkpoint, args.data_dir or default_data_dir(), args.examples)
    text = kind_of(checkpoint["task"]) == "text"
    result: dict[str, Any] = {}

    def export_and_verify(tmp_path: str) -> None:
        export(model, checkpoint, inputs if text else inputs[:2], tmp_path)
        result.update(verify(model, tmp_path, inputs, text=text))
    atomic_write(out, export_and_verify)
    print(f"exported {checkpoint['model_name']} to {out} ({os.path.getsize(out) / 2**20:.1f} MiB); checked on "
          f"{described}, batch shapes {result['batch_shapes']}: largest |logit difference| "
          f"{result['max_abs_diff']:.2e}, same prediction {100 * result['same_prediction']:.1f}%")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (errors: one line, exit 2)."""
    return run_tool(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
