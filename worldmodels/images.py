"""Frames and images: the VAE's input scale, grids, PNG files."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from worldmodels.files import atomic_path


def unit_frames(frames) -> tf.Tensor:
    """uint8 frames (any shape, numpy or tensor) -> float32 in [0, 1]: what the VAE reads."""
    return tf.cast(frames, tf.float32) / 255.0


def uint8_images(images) -> np.ndarray:
    """Images in [0, 1] (numpy or tensor; values outside are clipped) -> uint8, rounded."""
    return np.round(np.clip(np.asarray(images), 0.0, 1.0) * 255).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """N x H x W x 3 images (uint8, or float in [0, 1]) -> one uint8 grid, row by row."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = uint8_images(images)
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    grid = np.zeros((rows * height, columns * width, channels), np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return grid


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes a uint8 H x W x 3 image as PNG, atomically."""
    with atomic_path(path) as temporary:
        Image.fromarray(image).save(temporary, format="PNG")


def save_figure(figure, path: str | os.PathLike) -> None:
    """Writes the matplotlib `figure` as a PNG at `path`, atomically."""
    if figure.get_layout_engine() is None:  # one set at construction places things itself
        figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
