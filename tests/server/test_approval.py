"""Studio rules: unapproved registry entries are refused; pinned weight hashes are enforced
and recorded in the content credentials."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sfumato.client import Client, JobFailed, make_job
from sfumato.protocol import Array, Error, ErrorCode, LoraRef, Reference
from sfumato.provenance import verify_png

from ..conftest import running_server
from .conftest import Peer

SMALL = {"width": 64, "height": 64, "steps": 2}


def tiny_weights_sha256(folder: Path) -> str:
    """The documented folder hash, computed independently: sha256sum lines of the sorted
    weight files, hashed."""
    files = sorted(
        p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    lines = "".join(
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(folder).as_posix()}\n"
        for f in files
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture(scope="module")
def studio(tmp_path_factory, model_cache: Path):
    from sfumato.engine import ensure_tiny

    pinned = tiny_weights_sha256(ensure_tiny(model_cache, "sd15"))
    registry = tmp_path_factory.mktemp("registry") / "models.toml"
    registry.write_text(f"""
default = "house-sd"
include_builtin = true

[models.house-sd]
kind = "base"
family = "sd15"
source = "tiny:sd15"
license = "House licence 7"
sha256 = "{pinned}"

[models.stale-sd]
kind = "base"
family = "sd15"
source = "tiny:sd15"
license = "House licence 7"
sha256 = "{"0" * 64}"

[models.stale-ip-adapter]
kind = "ip_adapter"
family = "sd15"
source = "tiny:sd15-ip-adapter"
encoder = "tiny-sd-image-encoder"
sha256 = "{"0" * 64}"

[models.unvetted-sd]
kind = "base"
family = "sd15"
source = "tiny:sd15"
license = "unknown"
approved = false

[models.unvetted-style]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
license = "unknown"
approved = false
""")
    results = tmp_path_factory.mktemp("studio-results")
    with running_server(results, model_cache, "--registry", str(registry)) as s:
        s.pinned = pinned  # type: ignore[attr-defined]
        yield s


@pytest.mark.parametrize(
    ("params", "field", "name"),
    [
        ({"model": "unvetted-sd"}, "params.model", "unvetted-sd"),
        ({"loras": (LoraRef("unvetted-style", 0.5),)}, "params.loras[0].name", "unvetted-style"),
    ],
)
def test_unapproved_entries_are_refused_by_name(studio, params, field, name) -> None:
    peer = Peer(studio.url)
    peer.hello()
    job = make_job("generate", prompt="x", **SMALL, **params)
    peer.send(job)
    error = peer.recv()
    assert isinstance(error, Error) and error.code is ErrorCode.NOT_APPROVED, error
    assert error.field == field and error.id == job.id
    assert name in error.message and "approved" in error.message
    assert error.message.startswith(f"{field}: ")  # issue 9.22: the text names the path too
    peer.close()


def test_models_listing_shows_licenses_approval_and_hashes(studio) -> None:
    proc = subprocess.run([sys.executable, "-m", "sfumato.cli", "models", "--url", studio.url],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    listing = {m["name"]: m for m in json.loads(proc.stdout)["models"]}
    assert listing["house-sd"]["license"] == "House licence 7" and listing["house-sd"]["approved"]
    assert listing["house-sd"]["sha256"] == studio.pinned
    assert listing["unvetted-sd"]["approved"] is False


def test_pinned_hash_is_enforced_and_recorded(studio) -> None:
    with Client(studio.url) as client:
        result = client.run(
            make_job("generate", prompt="x", seed=1, files=True, **SMALL), timeout=120
        )
        facts = verify_png(bytes(result.files[0])).facts
        assert facts["model"] == {
            "name": "house-sd",
            "sha256": studio.pinned,
            "license": "House licence 7",
        }
        with pytest.raises(JobFailed) as failed:
            client.run(make_job("generate", prompt="x", model="stale-sd", **SMALL), timeout=120)
    assert failed.value.error.code is ErrorCode.MODEL_UNAVAILABLE
    assert "do not match the registry's sha256" in failed.value.error.message


def test_a_wrong_pin_on_the_ip_adapter_refuses_the_reference_job(studio) -> None:
    """The adapter a reference job loads is checked against its pin as a base or LoRA is:
    the typed error names the entry and the fix, and nothing is stored."""
    picture = Array.from_numpy(np.full((24, 24, 3), 90, np.uint8))
    job = dataclasses.replace(
        make_job("generate", prompt="x", seed=1, **SMALL), references=(Reference(picture),)
    )
    with Client(studio.url) as client:
        with pytest.raises(JobFailed) as failed:
            client.run(job, timeout=120)
        plain = client.run(make_job("generate", prompt="x", seed=1, **SMALL), timeout=120)
    error = failed.value.error
    assert (error.code, error.field, error.id) == (
        ErrorCode.MODEL_UNAVAILABLE, "inputs.references", job.id
    )  # fmt: skip
    assert "'stale-ip-adapter'" in error.message and "re-approved" in error.message
    assert "do not match the registry's sha256" in error.message
    assert not any((owner / job.id).exists() for owner in studio.results.iterdir())
    assert plain.images  # the same server still serves jobs without references
