"""The facts that go into each output's content credentials, gathered from the job, the
registry and what the engine reports (sfumato.provenance does the signing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ..protocol import Array, Job, LoraRef
from ..provenance import GenerationFacts, ModelRef, sha256_bytes
from ..registry import Registry
from ..registry.adapters import ip_adapter


def input_hashes(job: Job) -> dict[str, str]:
    """sha256 of every input's raw bytes (dtype and shape are in the parameters' record)."""
    out: dict[str, str] = {}

    def add(name: str, array: Array | None) -> None:
        if array is not None:
            out[name] = sha256_bytes(memoryview(array.data).cast("B"))

    add("image", job.image)
    add("mask", job.mask)
    for n, control in enumerate(job.controls):
        add(f"controls[{n}].{control.kind.value}", control.image)
        add(f"controls[{n}].mask", control.mask)
    for n, reference in enumerate(job.references):
        add(f"references[{n}].image", reference.image)
    for n, region in enumerate(job.regions):
        add(f"regions[{n}].mask", region.mask)
    return out


def job_facts(
    job: Job, model: str, seeds: tuple[int, ...], registry: Registry, hashes: Mapping[str, str]
) -> tuple[GenerationFacts, ...]:
    """One record per output image. ``hashes``: weight hashes the engine computed, by
    registry name; the registry's own ``sha256`` fills in where the engine gave none.
    References and regions are recorded as controls are: their parameters (and models) in
    order, each picture's or mask's sha256 in ``inputs`` under ``references[n].image`` /
    ``regions[n].mask``; a region's LoRAs as the job's own (name, weight, sha256)."""

    def ref(name: str) -> ModelRef:
        entry = registry.get(name)
        return ModelRef(name, hashes.get(name) or entry.sha256, entry.license)

    def trained(name: str) -> dict[str, str]:
        """A LoRA made by `sfumato train-lora`: what it learnt from (its dataset's manifest
        hash) and the base it was trained on, so an output names the assets behind it."""
        entry = registry.get(name)
        if not entry.dataset_sha256:
            return {}
        return {"dataset_sha256": entry.dataset_sha256, "base_model": entry.base_model,
                "base_sha256": entry.base_sha256}  # fmt: skip

    params: dict[str, Any] = asdict(job.params)
    for recorded_elsewhere in ("prompt", "negative", "seed", "files"):
        del params[recorded_elsewhere]
    # C2PA stores assertions as CBOR, where a list of small integers comes back as bytes: name them.
    params["expand"] = dict(zip(("left", "top", "right", "bottom"), job.params.expand, strict=True))

    def lora_facts(given: tuple[LoraRef, ...]) -> tuple[dict[str, Any], ...]:
        return tuple(
            {"name": lo.name, "weight": lo.weight, "sha256": ref(lo.name).sha256,
             **trained(lo.name)}
            for lo in given
        )  # fmt: skip

    base = registry.get(model)
    controls = []
    for c in job.controls:  # admission already found a ControlNet for each kind
        name = registry.controlnet(base.family, c.kind.value, tiny=base.tiny).name
        controls.append({
            "kind": c.kind.value, "model": name, "sha256": ref(name).sha256,
            "strength": c.strength, "start": c.start, "end": c.end, "preprocess": c.preprocess,
        })  # fmt: skip
    references = []
    if job.references:  # admission already found the family's IP-Adapter and its encoder
        adapter, encoder = ip_adapter(registry, base.family, tiny=base.tiny)
        for r in job.references:
            references.append({
                "model": adapter.name, "sha256": ref(adapter.name).sha256,
                "encoder": encoder.name, "encoder_sha256": ref(encoder.name).sha256,
                "weight": r.weight, "start": r.start, "end": r.end,
                "kind": None if r.kind is None else r.kind.value,
            })  # fmt: skip
    regions = tuple(
        {"prompt": g.prompt, "negative": g.negative, "loras": lora_facts(g.loras)}
        for g in job.regions
    )
    loras = lora_facts(job.params.loras)
    inputs = input_hashes(job)
    return tuple(
        GenerationFacts(
            job_id=job.id,
            task=job.task.value,
            prompt=job.params.prompt,
            negative=job.params.negative,
            seed=seed,
            model=ref(model),
            params=params,
            loras=loras,
            controlnets=tuple(controls),
            references=tuple(references),
            regions=regions,
            inputs=inputs,
        )
        for seed in seeds
    )
