"""Datasets: built-in, files and folders, split 70/15/15 and standardized with train statistics.
Imports nothing of dltune but errors and vocabulary; no torch, no Optuna.

>>> from dltune.data import load_data
>>> ds = load_data("digits")
>>> ds.describe()
'digits: classification (10 classes), 64 features of shape 1x8x8, 1257/270/270 train/val/test'
"""

from __future__ import annotations

from .arrays import from_arrays
from .dataset import Dataset
from .download import cache_dir, download_files
from .idx import read_idx, write_idx
from .load import load_data, load_digits, with_shape
from .mnist import MNIST_FILES, load_mnist, mnist_dir

__all__ = [
    "MNIST_FILES",
    "Dataset",
    "cache_dir",
    "download_files",
    "from_arrays",
    "load_data",
    "load_digits",
    "load_mnist",
    "mnist_dir",
    "read_idx",
    "with_shape",
    "write_idx",
]
