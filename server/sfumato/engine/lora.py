"""LoRAs by registry name: loaded once per base model, switched per job by weights.

``load_lora_weights`` injects peft layers into the shared UNet (and text encoders) of the base
pipeline, named after the registry entry; every pipeline derived with ``from_pipe`` shares those
modules, so one load serves generate, refine, inpaint and the ControlNet pipelines alike. A job
then only calls ``set_adapters(names, weights)``, which changes scaling factors and never
reloads or copies the base weights; a job without LoRAs disables them, so its output is the
base model's, bit for bit (a weight of 0 multiplies the LoRA branch by exactly zero too).
"""

from __future__ import annotations

from pathlib import Path

from ..protocol.conditioning import LoraRef
from ..registry import ModelEntry, Registry
from .loader import LoadedModel, Pipeline, guarded, lora_weights


def activate(
    loaded: LoadedModel, loras: tuple[LoraRef, ...], registry: Registry, cache_dir: Path
) -> None:
    """Make exactly ``loras`` active on ``loaded``'s base pipeline, at their weights.

    Raises UnknownModel (a name the registry lacks), ValueError (not a LoRA, or another
    family's) or ModelUnavailable (weights missing), before anything changes."""
    entries = [registry.lora(ref.name, loaded.entry.family) for ref in loras]
    base: Pipeline = loaded.base
    for entry in entries:
        if entry.name not in loaded.loras:
            _load(base, entry, cache_dir)
            loaded.loras.add(entry.name)
    if not loras:
        if loaded.loras:
            base.disable_lora()
        return
    base.enable_lora()
    base.set_adapters([ref.name for ref in loras], adapter_weights=[ref.weight for ref in loras])


def _load(base: Pipeline, entry: ModelEntry, cache_dir: Path) -> None:
    where, options = lora_weights(entry, cache_dir)
    guarded(
        entry,
        lambda: base.load_lora_weights(where, adapter_name=entry.name, **options),
        f"LoRA {entry.name!r} ({entry.source}) has no weights there; download it "
        f"(`huggingface-cli download {entry.location}` for a hub id) or fix its source",
    )
