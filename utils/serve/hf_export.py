"""A fine-tuned encoder written the way Hugging Face writes models: `save_pretrained` files of its
AutoModelForSequenceClassification (safetensors) with the run's class names as id2label, its fast
tokenizer, and a README.md model card, so transformers, pipeline() and the hub load it as their own."""
from __future__ import annotations

import os
import random
from typing import Any

import torch

from data.tokenization import SubwordTokenizer, tokenizer_from_meta
from utils.errors import InputError
from utils.serve.inputs import question_inputs
from utils.serve.predictor import class_probabilities


def hf_tokenizer(tokenizer: SubwordTokenizer, max_length: int) -> Any:
    """A transformers fast tokenizer of the same vocabulary, normalisation and special tokens, which
    cuts at `max_length` tokens when called with truncation=True."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    specials = tokenizer.special_tokens or {"pad_token": backend.id_to_token(tokenizer.pad_id)}
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=max_length, **specials)


def check_exportable(checkpoint: dict[str, Any]) -> None:
    """Raise InputError unless the checkpoint holds a fine-tuned encoder (train_transformer.py --pretrained)."""
    if checkpoint.get("model_name") != "pretrained":
        raise InputError(f"--format hf is for fine-tuned pretrained models (train_transformer.py or train_cnn.py "
                         f"--pretrained); this checkpoint holds a {checkpoint.get('model_name')} model: export it "
                         "to ONNX instead")


def save_hf_model(model: Any, checkpoint: dict[str, Any], folder: str) -> None:
    """Write the model of a fine-tuning checkpoint and its tokenizer into `folder` with save_pretrained."""
    check_exportable(checkpoint)
    names = list(checkpoint["class_names"])
    classifier = model.model
    classifier.config.id2label = dict(enumerate(names))
    classifier.config.label2id = {name: index for index, name in enumerate(names)}
    classifier.save_pretrained(folder, safe_serialization=True)
    hf_tokenizer(tokenizer_from_meta(checkpoint["meta"]), int(checkpoint["meta"]["max_length"])).save_pretrained(folder)


def metric_rows(summary: dict[str, Any]) -> list[str]:
    """Markdown table rows of the validation and test metrics of a run's summary.json."""
    labels = {"best_val_acc": "validation accuracy (best epoch)", "best_val_macro_f1": "validation macro-F1",
              "test_acc": "test accuracy", "test_macro_f1": "test macro-F1", "test_loss": "test loss"}
    return [f"| {label} | {summary[key]:.4f} |" for key, label in labels.items()
            if isinstance(summary.get(key), (int, float))]


def model_card(checkpoint: dict[str, Any], command: str, summary: dict[str, Any] | None) -> str:
    """A README.md for the folder: base model, data and classes, command, metrics, machine, use and limits."""
    config, names = checkpoint.get("config") or {}, checkpoint["class_names"]
    base, dataset = config.get("pretrained", "unknown"), config.get("dataset", "unknown")
    machine = (summary or {}).get("machine") or {}
    hardware = ", ".join(str(part) for part in (machine.get("cpu"), f"{machine['cores']} cores" if machine.get("cores")
                                                else None, machine.get("cuda")) if part) or "unknown"
    metrics = metric_rows(summary) if summary else []
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             *([f"base_model: {base}"] if not os.path.isdir(base) else []), "---", "",
             f"# {os.path.basename(os.path.normpath(base))} fine-tuned to classify texts into {len(names)} classes", "",
             f"Base model: `{base}`. Data set: `{dataset}`. Classes (id: label): "
             + ", ".join(f"{index}: {name}" for index, name in enumerate(names)) + ".", "",
             "```python", "from transformers import pipeline", "",
             'classify = pipeline("text-classification", model="path/to/this/folder")',
             f'classify("Who wrote Hamlet?", truncation=True)  # texts are cut at {checkpoint["meta"]["max_length"]} '
             "tokens, as in training", "```", "",
             "## Training", "", f"    {command}", "",
             f"Machine: {hardware}; {(summary or {}).get('precision', 'unknown')} precision, "
             f"{(summary or {}).get('world_size', 1)} process(es).", "",
             "## Results", "",
             *(["| metric | value |", "|---|---|", *metrics] if metrics else ["The run has no summary.json (not finished)."]),
             "", "## Intended use and limits", "",
             f"Sorting short texts like those of `{dataset}` into the classes above. Every text gets one of these "
             "classes, also one that belongs to none of them; accuracy on texts of another kind, domain or "
             "language is unknown and likely lower. Texts are cut at the length above. The model inherits the "
             f"biases of `{base}` and of the training data.", ""]
    return "\n".join(lines)


def generated_texts(tokenizer: SubwordTokenizer, count: int, seed: int = 0) -> list[str]:
    """`count` texts of 1 to 20 whole words drawn from the tokenizer's vocabulary."""
    rng = random.Random(seed)
    words = sorted(token for token in tokenizer.backend.get_vocab() if token.isalpha() and token.isascii())
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 20))) for _ in range(count)]


def compare_with_pipeline(folder: str, model: Any, checkpoint: dict[str, Any], texts: list[str]) -> dict[str, float]:
    """Classify `texts` with transformers' pipeline() reading `folder` and with `model` as predict.py
    does; returns the largest probability difference and the share of equal top-1 labels."""
    from transformers import pipeline

    classify = pipeline("text-classification", model=folder, tokenizer=folder, top_k=None, device="cpu")
    names = list(checkpoint["class_names"])
    rows = classify(texts, truncation=True)
    theirs = torch.tensor([[{item["label"]: item["score"] for item in row}[name] for name in names] for row in rows])
    ours = class_probabilities(model, question_inputs(texts, checkpoint["meta"]))
    return {"max_prob_diff": float((theirs - ours).abs().max()),
            "same_top1": float((theirs.argmax(dim=1) == ours.argmax(dim=1)).float().mean())}
