"""Pretrained image networks on real files, 2 CPU cores or whatever the machine has.

    # FashionMNIST as a PNG folder: 50 training and 50 validation images a class, the whole test set
    python bench/pretrained_images.py write --data-dir ../shared/data --out user-data/fmnist-50 --per-class 50
    # few images: the pretrained network fine-tuned against the seed CNN from scratch, 3 seeds each
    python bench/pretrained_images.py few --folder user-data/fmnist-50 \
        --pretrained ../shared/models/tf_efficientnet_lite0.in1k --image-size 96
    # the whole set: the pretrained network against the seed CNN's 15-minute recipe, one seed each
    python bench/pretrained_images.py write --data-dir ../shared/data --out user-data/fmnist-full --eval-per-class 500
    python bench/pretrained_images.py few --folder user-data/fmnist-full --image-size 64 --epochs 2 --seeds 1 \
        --scratch-preset budget --name pretrained-images-whole
    # distillation: a fine-tuned network (`python train_cnn.py --dataset user-data/fmnist-50 --pretrained
    # ../shared/models/tf_efficientnet_lite0.in1k --image-size 96 --out-dir runs/fmnist-50-effnet`) teaching the seed CNN
    python bench/pretrained_images.py distill --folder user-data/fmnist-50 --teacher runs/fmnist-50-effnet/best.pt
    # scale: 100,000 JPEGs at 224 px (FashionMNIST upscaled to RGB, mirrored copies to fill), decoded into the
    # cache (images/s), then a fixed number of training steps read from the memory-mapped cache against the
    # same steps on a subset held in memory: images/s and each process's peak resident memory
    python bench/pretrained_images.py write --data-dir ../shared/data --out user-data/fmnist-224 --size 224 \
        --jpeg --total 100000 --eval-per-class 100 --test-per-class 100
    python bench/pretrained_images.py scale --folder user-data/fmnist-224 \
        --pretrained ../shared/models/tf_efficientnet_lite0.in1k
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import common
import pretrained_scale
from utils.errors import one_line_errors


def write_folder(args: argparse.Namespace) -> None:
    """FashionMNIST as train/, val/ and test/ class folders of PNG (or JPEG) files."""
    import numpy as np
    from PIL import Image

    from data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

    splits = load_fashion_mnist(args.data_dir).splits
    train_images, train_labels = splits["train"].inputs[:, 0].numpy(), splits["train"].labels.numpy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train_labels))
    picked: dict[str, list[int]] = {"train": [], "val": []}
    for label in range(len(CLASS_NAMES)):
        members = order[train_labels[order] == label]
        count = args.per_class or (len(members) - args.eval_per_class)
        picked["train"] += members[:count].tolist()
        picked["val"] += members[count:count + (args.eval_per_class or args.per_class)].tolist()
    test_images, test_labels = splits["test"].inputs[:, 0].numpy(), splits["test"].labels.numpy()
    test_picked = [i for label in range(len(CLASS_NAMES)) for i in
                   np.flatnonzero(test_labels == label)[:args.test_per_class or None].tolist()]
    copies = -(-args.total // len(picked["train"])) if args.total else 1
    suffix = ".jpg" if args.jpeg else ".png"
    written = 0
    for split, images, labels, indices in (("train", train_images, train_labels, picked["train"] * copies),
                                           ("val", train_images, train_labels, picked["val"]),
                                           ("test", test_images, test_labels, test_picked)):
        if split == "train" and args.total:
            indices = indices[:args.total]
        for number, index in enumerate(indices):
            folder = os.path.join(args.out, split, CLASS_NAMES[labels[index]])
            os.makedirs(folder, exist_ok=True)
            image = Image.fromarray(images[index])
            if number >= len(picked["train"]) and split == "train":  # the copies are mirrored
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if args.size:
                image = image.convert("RGB").resize((args.size, args.size), Image.Resampling.BICUBIC)
            image.save(os.path.join(folder, f"{index}-{number}{suffix}"), quality=90)
            written += 1
    print(f"wrote {written:,} images into {args.out}")


def summary_of(run_dir: str) -> dict:
    """The summary.json of a finished run."""
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as file:
        return json.load(file)


def train(flags: list[str], out: str) -> dict:
    """Run train_cnn.py with `flags` into `out`; its summary."""
    command = [sys.executable, os.path.join(common.ROOT, "train_cnn.py"), *flags, "--out-dir", out,
               "--no-progress", "--no-tensorboard"]
    done = subprocess.run(command, stdout=subprocess.DEVNULL)
    if done.returncode:  # its error line is above, on standard error
        raise SystemExit(done.returncode)
    return summary_of(out)


def few(args: argparse.Namespace) -> None:
    """The pretrained network fine-tuned and the seed CNN from scratch on the folder, --seeds seeds each."""
    recipes = {"pretrained": ["--pretrained", args.pretrained, "--image-size", str(args.image_size),
                              *(["--epochs", str(args.epochs)] if args.epochs else [])],
               "seed-cnn": ["--preset", args.scratch_preset] if args.scratch_preset else []}
    result = {"folder": args.folder, "recipes": recipes, "runs": {}}
    scratch = tempfile.mkdtemp(prefix="bench-pretrained-")
    for name, flags in recipes.items():
        rows = []
        for seed in range(args.seeds):
            summary = train(["--dataset", args.folder, "--seed", str(seed), *flags],
                            os.path.join(scratch, f"{name}-{seed}"))
            rows.append({key: summary[key] for key in ("test_acc", "best_val_acc", "wall_seconds", "train_seconds",
                                                       "epochs_run", "num_params", "precision")})
            print(f"{name} seed {seed}: test {summary['test_acc']:.4f}, {summary['wall_seconds']:.0f} s")
        accuracy = [row["test_acc"] for row in rows]
        result["runs"][name] = {"seeds": rows, "test_acc_mean": statistics.mean(accuracy),
                                "test_acc_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                                "wall_seconds_mean": statistics.mean(row["wall_seconds"] for row in rows)}
    common.save_results(args.name, result)


def distill(args: argparse.Namespace) -> None:
    """The seed CNN taught by a fine-tuned network (--teacher) on the folder, --seeds seeds."""
    scratch = tempfile.mkdtemp(prefix="bench-distill-")
    rows = []
    for seed in range(args.seeds):
        summary = train(["--dataset", args.folder, "--seed", str(seed), "--teacher", args.teacher],
                        os.path.join(scratch, f"student-{seed}"))
        rows.append({key: summary[key] for key in ("test_acc", "best_val_acc", "wall_seconds", "train_seconds")})
        print(f"student seed {seed}: test {summary['test_acc']:.4f}, {summary['wall_seconds']:.0f} s")
    accuracy = [row["test_acc"] for row in rows]
    teacher = {**summary["teacher"], "path": os.path.relpath(summary["teacher"]["path"], common.ROOT)}
    common.save_results(args.name, {"folder": args.folder, "teacher": teacher, "seeds": rows,
                                    "test_acc_mean": statistics.mean(accuracy),
                                    "test_acc_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    writer = commands.add_parser("write", help="write FashionMNIST as an image folder")
    writer.add_argument("--data-dir", default="../shared/data")
    writer.add_argument("--out", required=True)
    writer.add_argument("--per-class", type=int, default=0, help="training images a class (0: all but validation)")
    writer.add_argument("--eval-per-class", type=int, default=0, help="validation images a class (0: as many as "
                        "--per-class)")
    writer.add_argument("--test-per-class", type=int, default=0, help="test images a class (0: all 1,000)")
    writer.add_argument("--size", type=int, default=0, help="upscale to this side, in RGB (0: 28 px gray)")
    writer.add_argument("--jpeg", action="store_true")
    writer.add_argument("--total", type=int, default=0, help="training images in all (mirrored copies fill)")
    for name in ("few", "scale", "steps", "distill"):
        sub = commands.add_parser(name)
        sub.add_argument("--folder", required=True)
        sub.add_argument("--pretrained", default="../shared/models/tf_efficientnet_lite0.in1k")
        sub.add_argument("--image-size", type=int, default=0)
        sub.add_argument("--name", default=f"pretrained-images-{name}")
    commands.choices["few"].add_argument("--seeds", type=int, default=3)
    commands.choices["distill"].add_argument("--seeds", type=int, default=3)
    commands.choices["distill"].add_argument("--teacher", required=True, help="a fine-tuned network's best.pt")
    commands.choices["few"].add_argument("--epochs", type=int, default=0)
    commands.choices["few"].add_argument("--scratch-preset", default="", help="the seed CNN's --preset (default: none)")
    for name in ("scale", "steps"):
        sub = commands.choices[name]
        sub.add_argument("--steps", type=int, default=60)
        sub.add_argument("--warmup", type=int, default=3)
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--architecture", default="tf_efficientnet_lite0")
        sub.add_argument("--bf16", action="store_true")
    commands.choices["steps"].add_argument("--limit-train", type=int, default=0)
    commands.choices["scale"].add_argument("--subset", type=int, default=5000, help="training images of the "
                                           "in-memory run")
    commands.choices["scale"].add_argument("--cache-parent", default="", help="where the empty cache is made")
    args = parser.parse_args()
    {"write": write_folder, "few": few, "scale": pretrained_scale.scale, "steps": pretrained_scale.steps,
     "distill": distill}[args.command](args)


if __name__ == "__main__":
    one_line_errors(main)
