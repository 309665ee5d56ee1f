"""Figures of a run: learning curves, confusion matrix, misclassified images (PNG, headless)."""
from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.storage.files import atomic_write  # noqa: E402


def save_figure(figure: plt.Figure, path: str) -> None:
    """Write `figure` as a PNG, atomically, and free it."""
    try:
        atomic_write(path, lambda tmp_path: figure.savefig(tmp_path, dpi=110, format="png"))
    finally:
        plt.close(figure)


def column(rows: list[dict], key: str) -> list[float]:
    """One metric over the epochs; a value saved as null (not finite) becomes NaN, a gap in the line."""
    return [float("nan") if row.get(key) is None else row[key] for row in rows]


def plot_curves(histories: dict[str, list[dict]], path: str) -> None:
    """Train/validation loss and accuracy per epoch, one line pair per run label."""
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in histories.items():
        epochs = [row["epoch"] for row in history]
        prefix = f"{label} " if len(histories) > 1 else ""
        for axis, key in ((loss_axis, "loss"), (acc_axis, "acc")):
            line, = axis.plot(epochs, column(history, f"train_{key}"), label=f"{prefix}train")
            axis.plot(epochs, column(history, f"val_{key}"), "--", color=line.get_color(),
                      label=f"{prefix}validation")
    for axis, title in ((loss_axis, "loss"), (acc_axis, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.92, wspace=0.18)  # tight_layout costs a draw
    save_figure(figure, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str) -> None:
    """Counts in each cell, colour normalised by row (the recall of each true class)."""
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = matrix / np.maximum(row_sums, 1)
    size = max(5.0, 0.55 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    for row in range(len(class_names)):
        for col in range(len(class_names)):
            axis.text(col, row, str(int(matrix[row, col])), ha="center", va="center", fontsize=8,
                      color="white" if normalised[row, col] > 0.5 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("test confusion matrix (colour: fraction of the true class)")
    figure.colorbar(image, fraction=0.046, pad=0.04)
    # margins for the longest class name (about 0.08 inch a character at 10 points), set directly:
    # tight_layout would draw the whole figure once more to measure it
    label_inches = 0.08 * max(len(name) for name in class_names) + 0.6
    figure.subplots_adjust(left=min(0.45, label_inches / (size + 1)), bottom=min(0.45, 0.75 * label_inches / size),
                           right=0.93, top=0.94)
    save_figure(figure, path)


def as_tile(image: np.ndarray) -> np.ndarray:
    """An (H, W) or (C, H, W) uint8 image as an (H, W, 3) RGB tile."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 3:
        image = image.transpose(1, 2, 0)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else np.repeat(image, 3 // image.shape[2], axis=2)


def plot_mistakes(images: Sequence[np.ndarray], captions: Sequence[str], path: str, columns: int = 6) -> None:
    """A grid of images ((H, W), or (C, H, W) with 1 or 3 channels), each captioned with its true and
    predicted label.

    The grid is one mosaic drawn on one axis: a figure of 36 small axes takes seconds to lay out.
    """
    tiles = [as_tile(image) for image in images]
    rows = max(1, -(-len(tiles) // columns))
    height = max([tile.shape[0] for tile in tiles] or [28])
    width = max([tile.shape[1] for tile in tiles] or [28])
    cell_width, cell_height = width + 4, height + 16  # room between the tiles and for two caption lines
    mosaic = np.zeros((rows * cell_height, columns * cell_width, 3), dtype=np.uint8)
    figure = plt.figure(figsize=(2.0 * columns, 2.3 * rows))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.axis("off")
    for index, (tile, caption) in enumerate(zip(tiles, captions)):
        top, left = (index // columns) * cell_height + 14, (index % columns) * cell_width + 2
        mosaic[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
        axis.text(left + width / 2, top - 1, caption, ha="center", va="bottom", fontsize=7, color="white")
    axis.imshow(mosaic, aspect="auto")
    save_figure(figure, path)
