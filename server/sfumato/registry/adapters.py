"""Which IP-Adapter (and image encoder) serves a base model's reference images.

Kept out of torch like the rest of the registry, so admission (service/admission.py) refuses a
reference job the model's family cannot serve before it queues, and the engine
(engine/references.py) loads exactly the entries admission checked.
"""

from __future__ import annotations

from ..protocol.errors import ErrorCode, JobRejected
from .rules import ModelEntry, Registry

FIELD = "inputs.references"


def ip_adapter(registry: Registry, family: str, *, tiny: bool) -> tuple[ModelEntry, ModelEntry]:
    """(adapter, its image encoder) for ``family``: approved entries first, then by name; a
    tiny base gets the tiny adapter (random weights would spoil a real image, and a real
    adapter does not fit a tiny UNet). Raises JobRejected ``unsupported`` when none is
    registered and ``unknown_model`` when the adapter names an encoder the registry lacks."""
    fits = [
        e
        for e in registry.entries.values()
        if e.kind == "ip_adapter" and e.family == family and e.tiny == tiny
    ]
    if not fits:
        raise JobRejected(
            ErrorCode.UNSUPPORTED,
            f"no IP-Adapter is registered for the {family} family, so this model takes no "
            f'reference images; drop inputs.references or add a kind = "ip_adapter" entry '
            f"for {family} (with its image encoder) to the registry",
            field=FIELD,
        )
    adapter = sorted(fits, key=lambda e: (not e.approved, e.name))[0]
    encoder = registry.entries.get(adapter.encoder)
    if encoder is None or encoder.kind != "image_encoder" or encoder.family != family:
        raise JobRejected(
            ErrorCode.UNKNOWN_MODEL,
            f"IP-Adapter {adapter.name!r} names encoder {adapter.encoder!r}, which is not an "
            f'image_encoder entry for {family} in the registry; add it (kind = "image_encoder") '
            "or fix the adapter's encoder field",
            field=FIELD,
        )
    return adapter, encoder
