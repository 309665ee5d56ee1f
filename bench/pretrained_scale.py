"""The scale part of bench/pretrained_images.py: a folder decoded into an empty cache (images/s), then a
fixed number of training steps read from the memory-mapped cache against the same steps on a subset
held in memory, each in a child process whose peak resident memory is recorded."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import common

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained_images.py")


def steps(args: argparse.Namespace) -> None:
    """(A child process.) --steps training steps of the pretrained network on the folder's batches;
    prints images/s, whether the images were read from disk, and this process's peak memory."""
    import torch

    import train_cnn
    from data.disk_images import DiskImages
    from models import build_model
    from utils.data_setup import image_data
    from utils.runtime import Runtime
    from utils.train.engine import Trainer, train_step

    config = train_cnn.CNNConfig(dataset=args.folder, pretrained=args.pretrained, batch_size=args.batch_size,
                                 limit_train=args.limit_train, progress=False, image_size=args.image_size)
    runtime = Runtime(torch.device("cpu"), "bf16" if args.bf16 else "fp32")
    data = image_data(config, runtime)
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
    command = [sys.executable, SCRIPT, "steps", "--folder", args.folder, "--pretrained",
               args.pretrained, "--steps", str(args.steps), "--limit-train", str(limit_train), "--image-size",
               str(args.image_size), "--architecture", args.architecture, "--batch-size", str(args.batch_size),
               *(["--bf16"] if args.bf16 else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: the training steps failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "page_cache_emptied_first": dropped}


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
    mapped = child_steps(args, 0)
    print(f"from the memory-mapped cache: {mapped}")
    in_memory = child_steps(args, args.subset)
    print(f"from a subset in memory: {in_memory}")
    common.save_results(args.name, {"folder": args.folder, "files": files, "decode_seconds": round(decode_seconds, 1),
                                    "decode_images_per_second": round(files / decode_seconds, 1),
                                    "cache_gib": round(cache_bytes / 2 ** 30, 2), "steps": args.steps,
                                    "batch_size": args.batch_size, "mapped": mapped, "in_memory": in_memory,
                                    "speed_ratio": mapped["images_per_second"] / in_memory["images_per_second"]})
