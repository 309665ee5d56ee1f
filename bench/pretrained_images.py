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
import time

import common
from utils.errors import one_line_errors


def write_folder(args: argparse.Namespace) -> None:
    """FashionMNIST as train/, val/ and test/ class folders of PNG (or JPEG) files."""
    import numpy as np
    from PIL import Image

    from data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

    splits = load_fashion_mnist(args.data_dir)
    train_images, train_labels = splits["train"].images.numpy(), splits["train"].labels.numpy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(train_labels))
    picked: dict[str, list[int]] = {"train": [], "val": []}
    for label in range(len(CLASS_NAMES)):
        members = order[train_labels[order] == label]
        count = args.per_class or (len(members) - args.eval_per_class)
        picked["train"] += members[:count].tolist()
        picked["val"] += members[count:count + (args.eval_per_class or args.per_class)].tolist()
    test_images, test_labels = splits["test"].images.numpy(), splits["test"].labels.numpy()
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
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
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
            summary = train(["--dataset", args.folder, "--seed", str(seed), *flags], os.path.join(scratch, f"{name}-{seed}"))
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
    common.save_results(args.name, {"folder": args.folder, "teacher": summary["teacher"], "seeds": rows,
                                    "test_acc_mean": statistics.mean(accuracy),
                                    "test_acc_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0})


def steps(args: argparse.Namespace) -> None:
    """(A child process.) --steps training steps of the pretrained network on the folder's batches;
    prints images/s, whether the images were read from disk, and this process's peak memory."""
    import torch

    import train_cnn
    from models import build_model
    from utils.data_setup import image_data
    from utils.runtime import Runtime
    from utils.train.engine import Trainer, train_step

    config = train_cnn.CNNConfig(dataset=args.folder, pretrained=args.pretrained, batch_size=args.batch_size,
                                 limit_train=args.limit_train, progress=False, image_size=args.image_size)
    runtime = Runtime(torch.device("cpu"), "bf16" if args.bf16 else "fp32")
    data = image_data(config, runtime)
    from data.disk_images import DiskImages
    model = build_model("timm", architecture=args.architecture, num_classes=len(data.class_names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    trainer = Trainer(model.to(memory_format=torch.channels_last), optimizer, runtime, lambda step: 1e-4,
                      torch.amp.GradScaler("cpu", enabled=False))
    batches, taken, start = iter(data.train), 0, 0.0
    for step in range(args.steps + args.warmup):
        if step == args.warmup:
            start = time.perf_counter()
        inputs, targets = next(batches)
        train_step(trainer, [(inputs, targets, None)])
        taken += len(targets) if step >= args.warmup else 0
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": taken / seconds, "from_disk": isinstance(data.train.images, DiskImages),
                      "training_images": len(data.train.labels), "peak_rss_mib": common.peak_rss_mib()}))


def drop_page_cache() -> bool:
    """Empty the operating system's page cache (root on Linux only), so that a run starts reading from disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as file:
            file.write("1")
    except OSError:
        return False
    return True


def child_steps(args: argparse.Namespace, limit_train: int) -> dict:
    """Run `steps` in a child process, the page cache emptied first where allowed; its printed result."""
    dropped = drop_page_cache()
    command = [sys.executable, os.path.abspath(__file__), "steps", "--folder", args.folder, "--pretrained",
               args.pretrained, "--steps", str(args.steps), "--limit-train", str(limit_train), "--image-size",
               str(args.image_size), "--architecture", args.architecture, "--batch-size", str(args.batch_size),
               *(["--bf16"] if args.bf16 else [])]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {**json.loads(output.strip().splitlines()[-1]), "page_cache_emptied_first": dropped}


def scale(args: argparse.Namespace) -> None:
    """Decode the folder into an empty cache (images/s), then train a fixed number of steps from the
    memory-mapped cache and from a subset held in memory."""
    import torch

    import train_cnn
    from data.images import image_files
    from utils.data_setup import image_data
    from utils.runtime import Runtime

    os.environ.setdefault("IMAGE_CACHE_DIR", tempfile.mkdtemp(prefix="image-cache-", dir=args.cache_parent or None))
    files = len(image_files(args.folder))
    config = train_cnn.CNNConfig(dataset=args.folder, pretrained=args.pretrained, progress=True,
                                 image_size=args.image_size)
    start = time.perf_counter()
    image_data(config, Runtime(torch.device("cpu"), "fp32"))
    decode_seconds = time.perf_counter() - start
    cache_bytes = sum(os.path.getsize(os.path.join(os.environ["IMAGE_CACHE_DIR"], name))
                      for name in os.listdir(os.environ["IMAGE_CACHE_DIR"]) if name.endswith(".npy"))
    print(f"decoded {files:,} images in {decode_seconds:.0f} s ({files / decode_seconds:.0f} images/s), "
          f"cache {cache_bytes / 2 ** 30:.1f} GiB")
    mapped, in_memory = child_steps(args, 0), child_steps(args, args.subset)
    print(f"from the memory-mapped cache: {mapped}\nfrom a subset in memory: {in_memory}")
    common.save_results(args.name, {"folder": args.folder, "files": files, "decode_seconds": round(decode_seconds, 1),
                                    "decode_images_per_second": round(files / decode_seconds, 1),
                                    "cache_gib": round(cache_bytes / 2 ** 30, 2), "steps": args.steps,
                                    "batch_size": args.batch_size, "mapped": mapped, "in_memory": in_memory,
                                    "speed_ratio": mapped["images_per_second"] / in_memory["images_per_second"]})


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
    {"write": write_folder, "few": few, "scale": scale, "steps": steps, "distill": distill}[args.command](args)


if __name__ == "__main__":
    one_line_errors(main)
