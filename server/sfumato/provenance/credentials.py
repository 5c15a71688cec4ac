"""Content credentials (C2PA) on every output PNG, and reading them back.

The manifest says: this image was created (``c2pa.created``) by a trained algorithm
(digitalSourceType trainedAlgorithmicMedia) using Sfumato, and a Sfumato assertion
records what exactly made it — model and LoRA names with weight hashes, ControlNets, the
IP-Adapter of reference pictures, regions (prompt, negative, LoRAs), seed, prompt, parameters
and the sha256 of every input — enough to reproduce it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import __version__
from ..protocol import SfumatoError
from .identity import SigningIdentity

ASSERTION = "org.sfumato.generation"
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


class CredentialsError(SfumatoError):
    pass


@dataclass(frozen=True)
class ModelRef:
    name: str
    sha256: str  # of the weights; "" when the registry names none and it was not computed
    license: str = ""


@dataclass(frozen=True)
class GenerationFacts:
    """What made one image. Serialised as the Sfumato assertion and the JSON sidecar."""

    job_id: str
    task: str
    prompt: str
    negative: str
    seed: int
    model: ModelRef
    params: dict[str, Any]
    # {name, weight, sha256}; a trained LoRA adds dataset_sha256, base_model, base_sha256
    loras: tuple[dict[str, Any], ...] = ()
    controlnets: tuple[dict[str, Any], ...] = ()  # {kind, model, sha256, strength, start, end}
    # {model, sha256, encoder, encoder_sha256, weight, start, end, kind}: the IP-Adapter and
    # its image encoder by name and weights hash; the picture's hash is inputs[references[n].image]
    references: tuple[dict[str, Any], ...] = ()
    # {prompt, negative, loras: as ``loras``}; the mask's hash is inputs[regions[n].mask]
    regions: tuple[dict[str, Any], ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)  # input name → sha256 of its bytes
    software: str = f"Sfumato {__version__}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationFacts:
        return cls(
            job_id=data["job_id"], task=data["task"], prompt=data["prompt"],
            negative=data.get("negative", ""), seed=int(data["seed"]),
            model=ModelRef(**data["model"]), params=dict(data["params"]),
            loras=tuple(data.get("loras", ())), controlnets=tuple(data.get("controlnets", ())),
            references=tuple(data.get("references", ())), regions=tuple(data.get("regions", ())),
            inputs=dict(data.get("inputs", {})), software=data.get("software", ""),
        )  # fmt: skip


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(facts: GenerationFacts, title: str) -> dict[str, Any]:
    agent = {"name": "Sfumato", "version": __version__}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": "image/png",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED,
                            "softwareAgent": agent,
                        }
                    ]
                },
            },
            {"label": ASSERTION, "data": facts.to_dict()},
        ],
    }


def sign_png(png: bytes, facts: GenerationFacts, identity: SigningIdentity, title: str) -> bytes:
    """The PNG with a C2PA manifest embedded (no thumbnail: the image is its own preview)."""
    import c2pa

    settings = c2pa.Settings().set("builder.thumbnail.enabled", "false")
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(identity.algorithm.encode(), identity.chain_pem, identity.key_pem, None)
    )
    out = io.BytesIO()
    try:
        with (
            c2pa.Context(settings=settings) as context,
            c2pa.Builder(manifest(facts, title), context) as builder,
        ):
            builder.sign(signer, "image/png", io.BytesIO(png), out)
    except c2pa.C2paError as exc:
        raise CredentialsError(
            f"signing failed: {exc}; check the signing certificate and key"
        ) from exc
    return out.getvalue()


@dataclass(frozen=True)
class Verification:
    state: str  # "missing", "Invalid", "Valid" (untrusted signer), "Trusted"
    facts: dict[str, Any] | None  # the Sfumato assertion, when present
    problems: tuple[str, ...]  # validation failure codes (untrusted-signer notes excluded)
    signer: str = ""
    untrusted: bool = False

    @property
    def ok(self) -> bool:
        return self.state in ("Valid", "Trusted") and not self.problems


def verify_png(data: bytes) -> Verification:
    import c2pa

    try:
        with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
            report: dict[str, Any] = json.loads(reader.json())
    except c2pa.C2paError as exc:
        kind = type(exc).__name__
        if "ManifestNotFound" in kind:
            return Verification("missing", None, ("no content credentials in this file",))
        return Verification("Invalid", None, (f"{kind}: {exc}",))
    statuses = report.get("validation_status") or []
    untrusted = any(s.get("code") == "signingCredential.untrusted" for s in statuses)
    problems = tuple(
        s.get("code", "?") for s in statuses if s.get("code") != "signingCredential.untrusted"
    )
    active = report.get("manifests", {}).get(report.get("active_manifest", ""), {})
    facts = next(
        (a.get("data") for a in active.get("assertions", []) if a.get("label") == ASSERTION), None
    )
    signer = (active.get("signature_info") or {}).get("common_name", "") or (
        active.get("signature_info") or {}
    ).get("issuer", "")
    return Verification(
        report.get("validation_state", "Invalid"), facts, problems, signer, untrusted
    )
