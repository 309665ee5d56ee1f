"""Inference speed: examples per second at batch 1 and 256, PyTorch against onnxruntime, per checkpoint.

    python bench/inference.py runs/cnn-X/best.pt runs/rnn-Y/best.pt ... --data-dir ../shared/data

Each checkpoint is exported with export.py's verified export (into a temporary folder), then both
runtimes classify the same inputs (test examples of its data set): the median of 5 rounds of
`--seconds` each, alternating. Results go to bench/results/inference.json (or `--name`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch

from export import example_inputs
from utils.errors import one_line_errors
from utils.serve.predictor import OnnxClassifier, load_for_inference
from utils.serve.onnx_export import export, verify

BATCH_SIZES = (1, 256)


def rate(classify, inputs, batch_size: int, seconds: float) -> float:
    """Examples per second of `classify` over batches of `batch_size` cut from `inputs`, for about `seconds`."""
    text = isinstance(inputs, tuple)
    count = len(inputs[1]) if text else len(inputs)
    batches = []
    for start in range(0, count - batch_size + 1, batch_size):
        if text:
            lengths = inputs[1][start:start + batch_size]
            batches.append((inputs[0][start:start + batch_size, :int(lengths.max())], lengths))
        else:
            batches.append(inputs[start:start + batch_size])
    done, begin = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - begin < seconds:
            for batch in batches:
                classify(batch)
                done += batch_size
    return done / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed round")
    parser.add_argument("--name", default="inference", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    rows = []
    for path in args.checkpoints:
        model, checkpoint = load_for_inference(path)
        inputs, _ = example_inputs(checkpoint, args.data_dir, 512)
        text = checkpoint["task"] == "trec"
        with tempfile.TemporaryDirectory() as folder:
            onnx_path = os.path.join(folder, "model.onnx")
            export(model, checkpoint, inputs if text else inputs[:2], onnx_path)
            check = verify(model, onnx_path, inputs, text)
            session = OnnxClassifier(onnx_path)
            for batch_size in BATCH_SIZES:
                rounds = {"pytorch": [], "onnxruntime": []}
                for _ in range(5):
                    rounds["pytorch"].append(rate(model, inputs, batch_size, args.seconds))
                    rounds["onnxruntime"].append(rate(session, inputs, batch_size, args.seconds))
                pytorch, onnx = (statistics.median(rounds[name]) for name in ("pytorch", "onnxruntime"))
                rows.append({"checkpoint": path, "model": checkpoint["model_name"], "batch": batch_size,
                             "pytorch_per_s": round(pytorch, 1), "onnxruntime_per_s": round(onnx, 1),
                             "ratio": round(onnx / pytorch, 2), "max_abs_diff": check["max_abs_diff"]})
                print(rows[-1], flush=True)
    common.print_table(rows, ["model", "batch", "pytorch_per_s", "onnxruntime_per_s", "ratio", "max_abs_diff",
                              "checkpoint"])
    common.save_results(args.name, {"rows": rows, "torch_threads": torch.get_num_threads()})


if __name__ == "__main__":
    one_line_errors(main)
