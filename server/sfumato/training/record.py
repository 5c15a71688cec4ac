"""The registry entry a trained LoRA gets: the same fields whether ``sfumato train-lora`` or a
server ``train`` job made it, so a studio reads one record of what each LoRA learnt from."""

from __future__ import annotations

from pathlib import Path

from .dataset import Dataset
from .options import TrainOptions


def registry_fields(
    dataset: Dataset,
    *,
    family: str,
    base_model: str,
    base_sha256: str,
    lora: Path,
    lora_sha256: str,
    steps: int,
    options: TrainOptions,
) -> dict[str, str | bool]:
    """``[models.<name>]`` of the new LoRA: unapproved, pinned to its file's hash, with the
    dataset's hash and licenses and the base it was trained on."""
    return {
        "kind": "lora", "family": family, "source": f"file:{Path(lora).resolve()}",
        "license": dataset.license, "approved": False, "sha256": lora_sha256,
        "dataset_sha256": dataset.sha256, "base_model": base_model, "base_sha256": base_sha256,
        "description": f"trained by sfumato train-lora on {len(dataset.samples)} images of "
        f"{dataset.rights.owner} ({dataset.rights.source}); {steps} steps, rank "
        f"{options.rank}, seed {options.seed}",
    }  # fmt: skip
