"""TensorBoard event files in the run folder: `tensorboard --logdir runs` shows every run side by side.

Scalars are plotted against the optimizer step: the training loss every few steps, and per
epoch (at the epoch's last step) the train/validation loss and accuracy, learning rate and
samples/s. Epoch scalars are flushed to disk just before the epoch is committed (utils.storage.run_folder),
and every run opens its writer with `purge_step` = its committed step + 1 (1 for a new run), so
TensorBoard drops whatever a killed run wrote after its last commit, or before its first: the curves
continue with no duplicate steps. Its event file must sort after the killed run's (TensorBoard reads
a folder's files in name order, and names begin with the second they were opened in): a writer
opened in the same second as the newest file there waits for the next second first. At the end,
one step after the last epoch's: the run's hyperparameters with its final
accuracies (the HParams view) and the learning-curve and confusion-matrix figures; a run killed
while writing them and resumed writes them once.
"""
from __future__ import annotations

import glob
import os
import time
from typing import Any

import numpy as np

EPOCH_SCALARS = {"train_loss": "loss/train", "val_loss": "loss/validation", "train_acc": "accuracy/train",
                 "val_acc": "accuracy/validation", "val_macro_f1": "macro_f1/validation", "lr": "lr",
                 "samples_per_s": "samples_per_s", "epoch": "epoch"}
FIGURES = {"curves.png": "figures/learning_curves", "confusion_matrix.png": "figures/confusion_matrix"}


EVENT_FILES = "events.out.tfevents.*"


def newest_event_second(run_dir: str) -> int:
    """The clock second in the name of the newest event file in `run_dir` (0: none)."""
    seconds = [int(part) for path in glob.glob(os.path.join(run_dir, EVENT_FILES))
               for part in [os.path.basename(path).split(".")[3]] if part.isdigit()]
    return max(seconds, default=0)


def wait_for_a_later_second(run_dir: str) -> None:
    """Return once the clock's second is later than that of every event file in `run_dir`, so that a new
    event file sorts after them by name."""
    while int(time.time()) <= newest_event_second(run_dir):
        time.sleep(1.001 - time.time() % 1)


class TensorBoardLog:
    """One run's TensorBoard writer (main process only), a subscriber of the run's log (utils.train.logger)."""

    def __init__(self, run_dir: str, committed_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only when logging is on

        self.run_dir = run_dir
        self.last_step = committed_step
        wait_for_a_later_second(run_dir)
        self.writer = SummaryWriter(run_dir, purge_step=committed_step + 1)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        """The training loss of one step (reported every few steps)."""
        self.writer.add_scalar("loss/train_step", metrics["step_loss"], step)

    def epoch(self, metrics: dict[str, float], is_best: bool, step: int) -> None:
        """An epoch's metrics at its last step; on disk when this returns (before the commit)."""
        for key, tag in EPOCH_SCALARS.items():
            if key in metrics:
                self.writer.add_scalar(tag, metrics[key], step)
        self.writer.flush()
        self.last_step = step

    def finish(self, config: dict[str, Any], results: dict[str, float]) -> None:
        """The hyperparameters with the final accuracies, and the run's figures, one step after the
        last epoch's (so that a resume, which purges every step after its commit, replaces them); then close."""
        step = self.last_step + 1
        hparams = {key: value for key, value in config.items()
                   if isinstance(value, (bool, int, float, str)) and value not in ("", None)}
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        # into this writer's own event file (add_hparams opens another, which a resume would not purge)
        metrics = {f"hparam/{key}": value for key, value in results.items()}
        for summary in hparams_summaries(hparams, metrics):
            self.writer.file_writer.add_summary(summary, step)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        from PIL import Image

        for name, tag in FIGURES.items():
            path = os.path.join(self.run_dir, name)
            if os.path.isfile(path):
                with Image.open(path) as image:
                    self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.close()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
