"""Content credentials (C2PA) on every output, checked with c2pa-python and `sfumato verify`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from sfumato.client import Client, make_job
from sfumato.provenance import verify_png

from .conftest import rgb


def stored(server, job_id: str) -> Path:
    (folder,) = [d / job_id for d in server.results.iterdir() if (d / job_id).is_dir()]
    return folder


def test_every_output_is_signed_with_the_facts_that_made_it(server) -> None:
    image = rgb(64, 64, seed=5)
    with Client(server.url) as client:
        job = make_job(
            "refine", image, prompt="signed", seed=8, steps=2, strength=0.5, variants=2, files=True
        )
        result = client.run(job, timeout=120)
    folder = stored(server, job.id)
    for n, seed in enumerate((8, 9)):
        data = (folder / f"image-{n}.png").read_bytes()
        assert bytes(result.files[n]) == data  # params.files returns the stored, signed file
        check = verify_png(data)
        assert check.ok and check.untrusted, check
        facts = check.facts
        assert facts["seed"] == seed and facts["prompt"] == "signed" and facts["task"] == "refine"
        assert facts["model"]["name"] == result.model
        assert facts["inputs"]["image"] == hashlib.sha256(image.tobytes()).hexdigest()
        assert facts["params"]["strength"] == 0.5
        sidecar = json.loads((folder / f"image-{n}.json").read_text())
        assert sidecar["credentials"] == facts and sidecar["development_signer"] is True


def test_changed_pixels_fail_verification(server, tmp_path: Path) -> None:
    with Client(server.url) as client:
        job = make_job("generate", prompt="x", seed=1, width=64, height=64, steps=2, files=True)
        result = client.run(job, timeout=120)
    good = tmp_path / "good.png"
    good.write_bytes(bytes(result.files[0]))
    data = bytearray(result.files[0])
    at = data.find(b"IDAT") + 12
    data[at] ^= 0xFF
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    plain = tmp_path / "plain.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain)

    def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "sfumato.cli", "verify", *map(str, paths)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    ok = verify(good)
    assert ok.returncode == 0 and "VALID" in ok.stdout and "seed 1" in ok.stdout
    tampered = verify(bad)
    assert tampered.returncode == 1 and "INVALID" in tampered.stdout
    missing = verify(plain)
    assert missing.returncode == 1 and "MISSING" in missing.stdout
