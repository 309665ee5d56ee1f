"""The one sink of a run's metrics: the engine reports each step's and each epoch's metrics once, and
every subscriber (the printed line, the run's history that becomes metrics.jsonl, TensorBoard) gets them.

    log = RunLog([ConsoleLine(epochs=10), History(progress["history"]), TensorBoardLog(run_dir)])

A subscriber implements any of `epoch_begins(epoch, batches, step)`, `step(step, metrics)` (every few
steps: running train_loss, step_loss, samples_per_s), `epoch(metrics, is_best, step)` (train and
validation loss and accuracy, lr, seconds, samples_per_s), `finish(config, results)` and `close()`.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from tqdm import tqdm

from utils.messages import MESSAGES, progress_bar

EVENTS = ("epoch_begins", "step", "epoch", "finish", "close", "note")


class RunLog:
    """Hands every event to each subscriber that implements it, in the order given."""

    def __init__(self, subscribers: Sequence[Any] = ()) -> None:
        self.subscribers = list(subscribers)

    def __getattr__(self, event: str) -> Callable[..., None]:
        if event not in EVENTS:
            raise AttributeError(event)

        def publish(*args: Any) -> None:
            for subscriber in self.subscribers:
                handler = getattr(subscriber, event, None)
                if handler is not None:
                    handler(*args)
        return publish


def format_duration(seconds: float) -> str:
    """`seconds` as h:mm:ss (or m:ss under an hour)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleLine:
    """A progress bar during each epoch (`progress`), then one line per epoch with the time left."""

    def __init__(self, epochs: int, progress: bool = True) -> None:
        self.epochs, self.progress = epochs, progress
        self.bar: tqdm | None = None
        self.began: float | None = None
        self.epochs_seen, self.seconds_seen = 0, 0.0
        self.first_step = 0

    def epoch_begins(self, epoch: int, batches: int, step: int) -> None:
        self.began, self.first_step = time.perf_counter(), step
        if self.progress:
            self.bar = progress_bar(total=batches, what=f"epoch {epoch}", unit="step")

    def step(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.first_step - self.bar.n)
            self.bar.set_postfix(loss=f"{metrics['train_loss']:.4f}", samples_per_s=f"{metrics['samples_per_s']:.0f}")

    def epoch(self, metrics: dict[str, Any], is_best: bool, step: int) -> None:
        self.close()
        if self.began is not None:
            self.epochs_seen += 1
            self.seconds_seen += time.perf_counter() - self.began
        left = (self.epochs - metrics["epoch"]) * self.seconds_seen / max(self.epochs_seen, 1)
        MESSAGES.info(f"epoch {metrics['epoch']:3d}/{self.epochs}  train loss {metrics['train_loss']:.4f} acc "
                      f"{metrics['train_acc']:.4f}  val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.4f}  "
                      f"lr {metrics['lr']:.2e}  {metrics['seconds']:.1f}s {metrics['samples_per_s']:.0f} samples/s  "
                      f"ETA {format_duration(left)}" + ("  *best" if is_best else ""))

    def note(self, message: str) -> None:
        """A line about the run (e.g. an early stop)."""
        MESSAGES.info(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class History:
    """Appends each epoch's metrics to `rows`: the run's history, which each commit saves in last.pt and
    its metrics.jsonl view."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def epoch(self, metrics: dict[str, Any], is_best: bool, step: int) -> None:
        self.rows.append(dict(metrics))
