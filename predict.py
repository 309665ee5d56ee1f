"""Classify your own inputs with a trained checkpoint (no data folder needed).

    python predict.py runs/rnn-.../best.pt "Who wrote Hamlet ?" "Where is Lima ?"
    echo "How far is the moon ?" | python predict.py runs/rnn-.../best.pt
    python predict.py runs/cnn-.../best.pt shoe.jpg shirt.png --json
    python predict.py runs/cnn-.../best.pt my_photos/                  # every image in a folder
    python predict.py runs/cnn-.../best.pt --test-index 0 17 --data-dir ../shared/data
    python predict.py runs/rnn-.../best.onnx "Who wrote Hamlet ?"      # an export.py file, via onnxruntime
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from data.bundle import kind_of
from data.fashion_mnist import load_fashion_mnist
from data.images import IMAGE_SUFFIXES, image_files
from utils.storage.files import dumps
from utils.errors import run_tool
from utils.config import default_data_dir
from utils.flags import ArgumentParser
from utils.errors import InputError
from utils.serve.inputs import decode_text, image_inputs, plain_text, question_inputs, read_image
from utils.serve.predictor import class_probabilities, load_for_inference


def parse_args(argv: Sequence[str] | None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a best.pt or last.pt from a training run, or a .onnx file from export.py")
    parser.add_argument("inputs", nargs="*", help="texts (for a text model) or image files and folders of them "
                        "(for an image model); texts are read one per line from stdin when none are given")
    parser.add_argument("--test-index", type=int, nargs="+", default=[], help="FashionMNIST test images by index")
    parser.add_argument("--data-dir", default="", help="data folder for --test-index")
    parser.add_argument("--top", type=int, default=3, help="how many classes to print per input (at least 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per input and line")
    args = parser.parse_intermixed_args(argv)  # options may stand between the inputs
    if args.top < 1:
        parser.error(f"argument --top: must be at least 1, got {args.top}")
    return args


def stdin_lines() -> list[str]:
    """Non-empty lines of standard input, decoded as UTF-8 (Latin-1 for a line that is not UTF-8)."""
    lines = [decode_text(raw).rstrip("\r") for raw in sys.stdin.buffer.read().split(b"\n")]
    return [line for line in lines if line.strip()]


def image_paths(inputs: Sequence[str]) -> list[str]:
    """The image files named, a folder standing for the image files in it (and its subfolders), sorted."""
    paths = []
    for path in inputs:
        if os.path.isdir(path):
            found = image_files(path)
            if not found:
                raise InputError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        else:
            paths.append(path)
    return paths


def classify(args) -> None:
    """Load the checkpoint, read the inputs and print the top classes of each."""
    model, checkpoint = load_for_inference(args.checkpoint)
    meta, names = checkpoint["meta"], checkpoint["class_names"]
    if kind_of(checkpoint["task"]) == "text":
        if args.test_index:
            raise InputError("--test-index is for FashionMNIST checkpoints; give texts instead")
        labels = [plain_text(text) for text in args.inputs] or stdin_lines()
        if not labels:
            raise InputError("no text given (as arguments or one per line on stdin)")
        inputs = question_inputs(labels, meta)
    else:
        labels = image_paths(args.inputs)
        images = [read_image(path, meta, checkpoint["task"]) for path in labels]
        if args.test_index:
            if checkpoint["task"] != "fashion_mnist":
                raise InputError("--test-index is for FashionMNIST checkpoints; give image files or folders")
            test = load_fashion_mnist(args.data_dir or default_data_dir()).splits["test"]
            for index in args.test_index:
                if not 0 <= index < len(test.labels):
                    raise InputError(f"--test-index {index} is outside 0..{len(test.labels) - 1}")
                images.append(test.inputs[index, 0].numpy())
                labels.append(f"test[{index}] (true: {names[test.labels[index]]})")
        if not images:
            raise InputError("no image given (image files, folders of them, or --test-index N)")
        inputs = image_inputs(images, meta)
    probabilities = class_probabilities(model, inputs)
    for label, row in zip(labels, probabilities):
        ranked = row.argsort(descending=True).tolist()
        if args.json:
            print(dumps({"input": label, "label": names[ranked[0]],
                         "probabilities": {names[i]: round(row[i].item(), 6) for i in ranked}}))
        else:
            top = ", ".join(f"{names[i]} {row[i].item():.3f}" for i in ranked[:args.top])
            print(f"{label}: {top}")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the top classes of each input; returns the exit code (errors: one line, exit 2)."""
    return run_tool(lambda: classify(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
