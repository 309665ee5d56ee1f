"""Run under torchrun by tests/test_distributed.py (and in-process for one process): one engine epoch with DistributedDataParallel.

    torchrun --nproc_per_node=2 tests/ddp_worker.py OUT_DIR BATCH_SIZE [ACCUMULATE]

Each rank saves its weights after training to OUT_DIR/rank<R>.pt.
"""
import os
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.bundle import ImageSpec, Order  # noqa: E402
from data.image_batches import ImageBatches  # noqa: E402
from models import build_model  # noqa: E402
from utils.train.engine import Trainer, train_one_epoch  # noqa: E402
from utils.train.optim import build_optimizer, lr_schedule  # noqa: E402
from utils.runtime import init_runtime, seed_everything, shutdown  # noqa: E402


def main(argv: list[str]) -> None:
    """Train one epoch as OUT_DIR BATCH_SIZE [ACCUMULATE] say, in this process's place among the torchrun processes."""
    out_dir, batch_size, accumulate = argv[0], int(argv[1]), int(argv[2]) if len(argv) > 2 else 1
    runtime = init_runtime("cpu", "fp32")
    seed_everything(0)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (96,), generator=generator)
    batches = ImageBatches(images, labels, batch_size, ImageSpec(0.5, 0.5),
                           Order(shuffle=True, seed=0, rank=runtime.rank, world_size=runtime.world_size))
    model = build_model("dnn", hidden_sizes=(16, 16))
    wrapped = DistributedDataParallel(model) if runtime.distributed else model
    optimizer = build_optimizer("sgd", model.parameters(), lr=0.1)
    trainer = Trainer(wrapped, optimizer, runtime, lr_schedule("none", 0.1, 10),
                      torch.amp.GradScaler("cpu", enabled=False), accumulate=accumulate)
    train_one_epoch(trainer, batches, 1)
    torch.save({"model": model.state_dict(), "steps": trainer.step,
                "examples": batches.example_order().tolist()},
               os.path.join(out_dir, f"rank{runtime.rank}.pt"))
    shutdown(runtime)


if __name__ == "__main__":
    main(sys.argv[1:])
