"""Export a trained checkpoint to ONNX for serving, or a fine-tuned encoder as a Hugging Face model
folder, verified against PyTorch before it is reported done.

    python export.py runs/cnn-.../best.pt                       # writes runs/cnn-.../best.onnx
    python export.py runs/rnn-.../best.pt --out lstm.onnx --data-dir ../shared/data
    python export.py runs/transformer-.../best.pt --format hf --out trec-minilm   # save_pretrained folder
    python export.py runs/cnn-.../best.pt --format hf --out photos-effnet   # a --pretrained image network, timm's format

The file has a dynamic batch size (and question length), and carries as metadata the class names,
the task and what turns raw input into model input (image normalisation, vocabulary or tokenizer).
onnxruntime then runs it on examples of the run's own data (the built-in test set, or the files of its
--dataset; generated inputs when they are not there) at batch sizes 1, 7 and 64, and the command
prints the largest logit difference and the
share of equal predictions; beyond 1e-4 it fails. `predict.py model.onnx ...` serves the file.

--format hf (fine-tuned encoders, train_transformer.py --pretrained) writes the model as
AutoModelForSequenceClassification's save_pretrained files (safetensors) with the class names as
id2label, its tokenizer and a README.md model card; transformers' pipeline("text-classification")
then reads the folder and must give predict.py's top-1 label on every check text and its
probabilities to 1e-5. --out must be a new or empty folder, or one this command wrote before: then
only the files it wrote there (listed in its .written-by-export.json) are replaced, and every other
file in it (notes, .git) stays. A fine-tuned image network (train_cnn.py --pretrained) is written in
timm's folder format (config.json with the class names and preprocessing, model.safetensors, README.md),
which timm.create_model("local-dir:DIR", pretrained=True) and pipeline("image-classification") load;
both must give predict.py's label on every check image and its probabilities to 1e-4.
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
from data.images import image_files, image_shape
from data.text_files import is_text_file, read_text_file
from data.tokenization import tokenizer_from_meta
from data.fashion_mnist import load_fashion_mnist
from data.trec import load_trec_files
from utils.config import default_data_dir, implied_preset
from utils.errors import ConfigError, InputError, run_tool
from utils.flags import ArgumentParser, command_line, fields_with
from utils.serve.hf_export import check_exportable, compare_with_pipeline, generated_texts, model_card, save_hf_model
from utils.serve.inputs import image_inputs, question_inputs, read_image
from utils.serve.onnx_export import export, verify
from utils.serve.predictor import load_for_inference, run_summary_of
from utils.storage.files import atomic_write, write_into_folder, written_before
from utils.serve.timm_export import write_timm_folder
from train_cnn import PRESETS as CNN_PRESETS, CNNConfig
from train_transformer import PRESETS, TransformerConfig


def trec_test_questions(data_dir: str, count: int) -> list[str] | None:
    """The first `count` TREC test questions of the data folder, or None when it holds no TREC."""
    try:
        return [q.text for q in load_trec_files(data_dir, allow_download=False)["test"][:count]]
    except DataError:
        return None


def own_data_examples(checkpoint: dict[str, Any], count: int) -> tuple[list[Any], str] | None:
    """Up to `count` inputs of the run's own --dataset, read as predict.py reads inputs (images as model
    arrays, texts as strings), and what they are; None when the data is not a local folder or file, or
    no longer reads (files changed or gone since training)."""
    config = checkpoint.get("config") or {}
    spec = str(config.get("dataset", ""))
    try:
        if checkpoint["task"] == "image" and os.path.isdir(spec):
            paths = image_files(spec)[:count]
            examples, described = [read_image(path, checkpoint["meta"], "image") for path in paths], "images"
        elif checkpoint["task"] == "text" and os.path.isfile(spec) and is_text_file(spec):
            rows, _ = read_text_file(spec, config.get("text_column") or "text", config.get("label_column") or "label")
            examples, described = [row.text for row in rows[:count]], "texts"
        else:
            return None
    except (DataError, InputError):
        return None
    return (examples, f"{len(examples)} {described} of {spec}") if examples else None


def example_inputs(checkpoint: dict[str, Any], data_dir: str, count: int) -> tuple[Any, str]:
    """Model inputs to check the export on: the run's own data where it can be read (the built-in data
    set's test examples, or the files of its --dataset), else generated ones."""
    meta, rng, task = checkpoint["meta"], np.random.default_rng(0), checkpoint["task"]
    questions = trec_test_questions(data_dir, count) if task == "trec" else None
    if questions:
        return question_inputs(questions, meta), f"{len(questions)} TREC test questions"
    own = own_data_examples(checkpoint, count)
    if own:
        examples, described = own
        examples = (examples * -(-count // len(examples)))[:count]  # repeated to fill every batch size checked
        return (question_inputs(examples, meta) if task == "text" else image_inputs(examples, meta)), described
    try:
        if task == "fashion_mnist":
            images = load_fashion_mnist(data_dir, allow_download=False).splits["test"].inputs[:count, 0].numpy()
            return image_inputs(list(images), meta), f"{len(images)} FashionMNIST test images"
    except DataError:
        pass
    where = f"no data in {data_dir}" if task in ("trec", "fashion_mnist") else "the run's data set is not here"
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
    parser.add_argument("--format", default="onnx", choices=["onnx", "hf"],
                        help="an .onnx file, or a Hugging Face model folder (fine-tuned encoders)")
    parser.add_argument("--out", default="", help="the .onnx file or (--format hf) folder to write (default: "
                        "beside the checkpoint)")
    parser.add_argument("--data-dir", default="", help="data folder for the check (default: the run's own, else "
                        "$CLASSIFY_DATA_DIR or ./datasets; generated inputs when absent)")
    parser.add_argument("--examples", type=int, default=256, help="how many examples to check (at least 64)")
    args = parser.parse_intermixed_args(argv)
    if args.examples < 64:
        parser.error(f"argument --examples: must be at least 64, got {args.examples}")
    return args


def data_dir_of(args: argparse.Namespace, checkpoint: dict[str, Any]) -> str:
    """Where the check's data is: --data-dir, else the run's own data folder, else the default one."""
    return args.data_dir or (checkpoint.get("config") or {}).get("data_dir") or default_data_dir()


def output_path(checkpoint_path: str, out: str) -> str:
    """Where the export goes: `out`, else beside the checkpoint; never the checkpoint itself or another
    non-.onnx file."""
    out = out or os.path.splitext(checkpoint_path)[0] + ".onnx"
    if not out.endswith(".onnx") or os.path.realpath(out) == os.path.realpath(checkpoint_path):
        raise ConfigError(f"--out {out}: give a new .onnx file, not the checkpoint or another kind of file")
    return out


def hf_output_folder(checkpoint_path: str, out: str) -> str:
    """Where --format hf writes: `out`, else `hf-model` beside the checkpoint; refused when it is a file
    or a folder with files but none that this command wrote."""
    out = out or os.path.join(os.path.dirname(checkpoint_path), "hf-model")
    if os.path.exists(out) and not (os.path.isdir(out) and (not os.listdir(out) or written_before(out) is not None)):
        raise ConfigError(f"--out {out}: give a new or empty folder (it holds files that export.py did not write)")
    return out


def run_timm_hf(args: argparse.Namespace, out: str, model: Any, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Write a fine-tuned image network in timm's folder format, checked with timm and pipeline() before
    it appears at --out; returns the comparison."""
    saved = checkpoint.get("config") or {}
    command = command_line(CNNConfig, saved, preset_values(CNNConfig, CNN_PRESETS, saved), "train_cnn.py",
                           left_out=sorted(fields_with(CNNConfig, "published", False)))
    result = write_timm_folder(out, model, checkpoint, command, args.examples)
    print(f"wrote a timm model folder {out}; timm.create_model('local-dir:...') and pipeline('image-classification') "
          f"on {result['described']}: same label {100 * result['same_top1']:.1f}%, largest probability difference "
          f"{max(result['max_prob_diff'], result['timm_max_prob_diff']):.1e}")
    return result


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    """Write a fine-tuned encoder as a Hugging Face model folder (an image network in timm's format),
    checked with pipeline() before it appears at --out; returns the comparison."""
    out = hf_output_folder(args.checkpoint, args.out)
    model, checkpoint = load_for_inference(args.checkpoint)
    if checkpoint.get("model_name") == "timm":
        return run_timm_hf(args, out, model, checkpoint)
    check_exportable(checkpoint)
    tokenizer = tokenizer_from_meta(checkpoint["meta"])
    texts, described = example_texts(checkpoint, data_dir_of(args, checkpoint), args.examples, tokenizer)
    summary = run_summary_of(args.checkpoint)
    saved = checkpoint.get("config") or {}
    command = command_line(TransformerConfig, saved, preset_values(TransformerConfig, PRESETS, saved),
                           "train_transformer.py",
                           left_out=sorted(fields_with(TransformerConfig, "published", False)))
    result: dict[str, Any] = {}

    def write_and_compare(folder: str) -> None:
        save_hf_model(model, checkpoint, folder)
        with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as file:
            file.write(model_card(checkpoint, command, summary))
        result.update(compare_with_pipeline(folder, model, checkpoint, texts))
        if result["same_top1"] < 1 or not result["max_prob_diff"] <= 1e-5:
            raise InputError(f"the saved model disagrees with the checkpoint (largest probability difference "
                             f"{result['max_prob_diff']:.1e}, same label {100 * result['same_top1']:.1f}%); nothing written")
    write_into_folder(out, write_and_compare)
    result["described"] = described
    print(f"wrote a Hugging Face model folder {out}; pipeline('text-classification') on {described}: same label "
          f"{100 * result['same_top1']:.1f}%, largest probability difference {result['max_prob_diff']:.1e}")
    return result


def preset_values(config_class: type, presets: dict[str, dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """The values of the preset a run of `config_class` used: given, or the one its flags imply."""
    return presets.get(config.get("preset") or implied_preset(config_class, set(config), config), {})


def example_texts(checkpoint: dict[str, Any], data_dir: str, count: int, tokenizer: Any) -> tuple[list[str], str]:
    """Texts to compare the saved model on: TREC test questions or the run's own text file, else texts of
    the tokenizer's words."""
    questions = trec_test_questions(data_dir, count) if checkpoint["task"] == "trec" else None
    if questions:
        return questions, f"{len(questions)} TREC test questions"
    return own_data_examples(checkpoint, count) or (generated_texts(tokenizer, count), f"{count} texts of random words")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export, verify and report one checkpoint; returns the verification result. The file appears at
    --out only once it is verified (a kill or a failure leaves the previous file)."""
    if args.checkpoint.endswith(".onnx"):
        raise InputError(f"{args.checkpoint} is already an ONNX file: export.py takes a checkpoint (best.pt)")
    if args.format == "hf":
        return run_hf(args)
    out = output_path(args.checkpoint, args.out)
    model, checkpoint = load_for_inference(args.checkpoint)
    inputs, described = example_inputs(checkpoint, data_dir_of(args, checkpoint), args.examples)
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
