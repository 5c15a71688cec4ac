"""Brand LoRAs: the torch-free half of training (the dataset and its rights, the options).

A studio trains only on images it owns or licensed, and must be able to prove later which
ones: ``dataset`` reads a folder of images with sidecar captions and a ``dataset.toml``
declaring owner, license and source, refuses an image without declared rights, and hashes
every file into a manifest whose hash the LoRA's registry entry and every output's content
credentials record. ``options`` holds the training options and their per-family defaults.
The training loop itself needs torch and lives in ``sfumato.engine.training``.
"""

from .dataset import (
    DATASET_FILE,
    IMAGE_SUFFIXES,
    Dataset,
    DatasetError,
    Rights,
    Sample,
    load_dataset,
)
from .options import DEFAULTS, TrainOptions, defaults_for

__all__ = [
    "DATASET_FILE",
    "DEFAULTS",
    "IMAGE_SUFFIXES",
    "Dataset",
    "DatasetError",
    "Rights",
    "Sample",
    "TrainOptions",
    "defaults_for",
    "load_dataset",
]
