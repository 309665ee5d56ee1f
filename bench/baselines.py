"""This project's training against the pipelines people start from, in one run on whatever machine it is given.

    python bench/baselines.py --data-dir ../shared/data --pretrained ../shared/models/all-MiniLM-L6-v2
    python bench/baselines.py --data-dir ../shared/data --only cnn --steps 300

cnn: the seed CNN on FashionMNIST at batch 64 with Adam 1e-3. The PyTorch tutorial's pipeline
(torchvision dataset, ToTensor + Normalize per image, a DataLoader with 2 workers; on a GPU pinned
memory and non-blocking copies) against the engine on whole-tensor batches with the script's
defaults (channels-last, crop + flip), plain and with --compile (on a GPU each step recorded once as
a CUDA graph and replayed; on a CPU torch.compile); both in bf16 autocast on a GPU and in float32
on a CPU. Each
figure is the median of --repeats measurements of --steps steps after warm-up, the pipelines
alternating.

minilm: fine-tuning --pretrained on TREC's 6 coarse classes, 4,952 training questions (the same
500 held out), batch 32, 4 epochs, warm-up then linear decay. Hugging Face's Trainer (learning rate
1e-4, dynamic padding; bf16 on a GPU) against train_transformer.py --pretrained (its finetune
preset; --precision auto). Training samples/s and test accuracy of each.

Writes bench/results/baselines-<cpu|gpu>.json with the machine (or --name).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

import common
import torch
import torch.nn.functional as F

from data.builtin import fashion_mnist_bundle
from data.bundle import Batching, ImageSpec
from data.examples import Holdout, split
from data.trec import COARSE_LABELS, read_trec
from models import build_model
from utils.errors import one_line_errors
from utils.runtime import Runtime, autocast, cpu_bf16_native, seed_everything, select_device
from utils.train.engine import Trainer, train_one_epoch
from utils.train.graphed_step import GraphedStep
from utils.train.optim import build_optimizer, lr_schedule
from utils.train.training_run import wrap_for_training
from throughput import Limited

WARMUP_STEPS = 30  # before timing: cuDNN's algorithm search, compilation, CUDA graph capture


def tutorial_cnn(loader, device: torch.device, precision: str, steps: int) -> float:
    """Samples/s of the tutorial's loop: per-image transforms in DataLoader workers, a batch at a time to the device."""
    seed_everything(0)
    model = build_model("cnn").to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    runtime = Runtime(device, precision)
    model.train()
    seen, start = 0, 0.0
    for step, (images, targets) in enumerate(itertools.islice(itertools.cycle(loader), WARMUP_STEPS + steps)):
        if step == WARMUP_STEPS:
            synchronize(device)
            seen, start = 0, time.perf_counter()
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with autocast(runtime):
            loss = F.cross_entropy(model(images).float(), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(targets)
    synchronize(device)
    return seen / (time.perf_counter() - start)


def our_cnn(batches, device: torch.device, precision: str, steps: int, compiled: bool) -> float:
    """Samples/s of the engine with train_cnn.py's defaults on whole-tensor batches on the device."""
    seed_everything(0)
    model = build_model("cnn").to(device).to(memory_format=torch.channels_last)
    runtime = Runtime(device, precision)
    optimizer = build_optimizer("adam", model.parameters(), 1e-3)
    graphs = compiled and device.type == "cuda"  # what --compile does there (utils.train.graphed_step)
    trainer = Trainer(wrap_for_training(model, runtime, compiled and not graphs), optimizer, runtime,
                      lr_schedule("none", 1e-3, 1), torch.amp.GradScaler(device.type, enabled=False))
    if graphs:
        trainer.graphed = GraphedStep(trainer)
    train_one_epoch(trainer, Limited(batches, WARMUP_STEPS), 0)
    return train_one_epoch(trainer, Limited(batches, steps), 1)["samples_per_s"]  # timed to its last host read


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnn_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """The seed CNN: tutorial pipeline against ours, plain and compiled."""
    precision = "bf16" if device.type == "cuda" else "fp32"  # the tutorial's arithmetic on each
    loader = common.tutorial_loader(args.data_dir, True, 64, True, workers=2, pin_memory=device.type == "cuda")
    batches = fashion_mnist_bundle(args.data_dir, Batching(64, 1024, device=device),
                                   ImageSpec(augment=True, channels_last=True), Holdout(val_size=5000)).train
    speeds: dict[str, list[float]] = {"tutorial": [], "ours": [], "ours --compile": []}
    for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits each
        speeds["tutorial"].append(tutorial_cnn(loader, device, precision, args.steps))
        speeds["ours"].append(our_cnn(batches, device, precision, args.steps, compiled=False))
        if not args.no_compile:
            speeds["ours --compile"].append(our_cnn(batches, device, precision, args.steps, compiled=True))
    base = statistics.median(speeds["tutorial"])
    return [{"comparison": f"seed CNN, FashionMNIST, batch 64, {precision}", "pipeline": name,
             "samples_per_s": round(statistics.median(values)), "ratio": round(statistics.median(values) / base, 2)}
            for name, values in speeds.items() if values]


def trec_split(data_dir: str) -> dict[str, tuple[list[str], list[int]]]:
    """TREC's coarse questions split as train_transformer.py splits them by default (500 for validation)."""
    splits = split(read_trec(data_dir), Holdout(val_size=500))
    return {name: (splits[name].inputs, splits[name].labels.tolist()) for name in ("train", "test")}


def trainer_minilm(args: argparse.Namespace, device: torch.device) -> dict:
    """Hugging Face's Trainer fine-tuning --pretrained: training samples/s and test accuracy."""
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer as HFTrainer, TrainingArguments)

    split = trec_split(args.data_dir)
    tokenizer = AutoTokenizer.from_pretrained(args.pretrained, local_files_only=True)

    def encoded(texts: list[str], labels: list[int]) -> Dataset:
        return Dataset.from_dict({"text": texts, "label": labels}).map(
            lambda rows: tokenizer(rows["text"], truncation=True, max_length=64), batched=True, remove_columns=["text"])
    model = AutoModelForSequenceClassification.from_pretrained(
        args.pretrained, num_labels=len(COARSE_LABELS), local_files_only=True, dtype=torch.float32)
    half_epoch = -(-len(split["train"][0]) // 64)  # the warm-up of ours: half an epoch of batches of 32
    settings = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=32, num_train_epochs=4,
                                 learning_rate=1e-4, warmup_steps=half_epoch, lr_scheduler_type="linear",
                                 weight_decay=0.01, bf16=device.type == "cuda", eval_strategy="no", save_strategy="no",
                                 report_to=[], logging_steps=100, seed=0, use_cpu=device.type == "cpu",
                                 disable_tqdm=True)
    trainer = HFTrainer(model=model, args=settings, train_dataset=encoded(*split["train"]),
                        data_collator=DataCollatorWithPadding(tokenizer))
    metrics = trainer.train().metrics
    predictions = trainer.predict(encoded(*split["test"])).predictions.argmax(axis=1).tolist()
    accuracy = sum(int(p == t) for p, t in zip(predictions, split["test"][1])) / len(predictions)
    return {"pipeline": "Hugging Face Trainer", "samples_per_s": round(metrics["train_samples_per_second"]),
            "test_acc": round(accuracy, 4)}


def our_minilm(args: argparse.Namespace, compiled: bool) -> dict:
    """train_transformer.py --pretrained: training samples/s (epochs, without validation) and test accuracy."""
    import train_transformer

    summary = train_transformer.main(["--data-dir", args.data_dir, "--pretrained", args.pretrained, "--out-dir",
                                      tempfile.mkdtemp(), "--no-progress", "--no-tensorboard",
                                      *(["--compile"] if compiled else [])])
    examples = len(trec_split(args.data_dir)["train"][0])
    return {"pipeline": "ours" + (" --compile" if compiled else ""),
            "samples_per_s": round(examples * summary["epochs_run"] / summary["train_seconds"]),
            "test_acc": round(summary["test_acc"], 4), "precision": summary["precision"]}


def minilm_rows(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Fine-tuning --pretrained: Trainer against ours."""
    rows = [trainer_minilm(args, device), our_minilm(args, compiled=False)]
    if not args.no_compile:
        rows.append(our_minilm(args, compiled=True))
    base = rows[0]["samples_per_s"]
    return [{"comparison": "MiniLM fine-tuned on TREC, batch 32, 4 epochs", **row,
             "ratio": round(row["samples_per_s"] / base, 2)} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--pretrained", default="../shared/models/all-MiniLM-L6-v2")
    parser.add_argument("--only", choices=["cnn", "minilm"], default=None, help="run one of the two comparisons")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per CNN measurement")
    parser.add_argument("--repeats", type=int, default=3, help="CNN measurements of each pipeline; the median is kept")
    parser.add_argument("--no-compile", action="store_true", help="leave out the --compile rows")
    parser.add_argument("--name", default="", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    device = select_device("auto")
    rows = []
    if args.only in (None, "cnn"):
        rows += cnn_rows(args, device)
    if args.only in (None, "minilm"):
        rows += minilm_rows(args, device)
    common.print_table(rows, ["comparison", "pipeline", "samples_per_s", "ratio", "test_acc"])
    common.save_results(args.name or f"baselines-{'gpu' if device.type == 'cuda' else 'cpu'}-{args.only or 'all'}",
                        {"device": str(device), "cpu_bf16_native": cpu_bf16_native(), "steps": args.steps,
                         "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    one_line_errors(main)
