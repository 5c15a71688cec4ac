"""`sfumato models pull` against a local fake hub (tests/fakehub.py) on loopback: what a resume
saves and what the checks cost, as ratios measured in one run. Prints JSON.

    .venv/bin/python benchmarks/models_pull.py --mb 192

A repo of three weight files (--mb in all) is pulled once whole; then again into an empty
cache, killed (SIGKILL) when the largest file is half sent, and run again: the figure is the
bytes the second run asked for, against the file. ``check_share`` is the time spent hashing
(each file's sha256 + the pin) over the whole pull, measured by hashing the same files again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakehub import Stall, fake_hub  # noqa: E402

from sfumato.registry.digest import file_sha256  # noqa: E402

REGISTRY = """default = "tiny"
[models.tiny]
kind = "base"
family = "sd15"
source = "tiny:sd15"
[models.bench]
kind = "base"
family = "sd15"
source = "hub:bench/model"
"""


def env(tmp: Path, url: str) -> dict[str, str]:
    out = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    out.update(HF_ENDPOINT=url, HF_HUB_CACHE=str(tmp / "hub"), HF_HOME=str(tmp / "home"))
    return out


def pull(tmp: Path, url: str, registry: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "models", "pull", "bench", "--registry", str(registry)],
        env=env(tmp, url), check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=192, help="size of the repo's weights in all")
    args = parser.parse_args()
    big = args.mb * 1024 * 1024 // 2
    files = {
        "model_index.json": b"{}",
        "unet/config.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": os.urandom(big),
        "vae/diffusion_pytorch_model.safetensors": os.urandom(big // 2),
        "text_encoder/model.safetensors": os.urandom(big // 2),
    }
    total = sum(len(d) for d in files.values())
    with fake_hub() as hub, tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "r.toml").write_text(REGISTRY)
        hub.put("bench/model", files)
        (tmp / "a").mkdir()
        whole = pull(tmp / "a", hub.url, tmp / "r.toml")
        snapshot = next((tmp / "a" / "hub").glob("models--bench--model/snapshots/*"))
        start = time.perf_counter()
        for path in files:
            if path.endswith(".safetensors"):
                file_sha256(snapshot / path)
        hashing = time.perf_counter() - start

        (tmp / "b").mkdir()
        target = "unet/diffusion_pytorch_model.safetensors"
        hub.stall = Stall("bench/model", target, after=big // 2)
        first = subprocess.Popen(
            [sys.executable, "-m", "sfumato.cli", "models", "pull", "bench",
             "--registry", str(tmp / "r.toml")],
            env=env(tmp / "b", hub.url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        hub.stall.reached.wait(120)
        time.sleep(1.0)  # let the client write what it has received
        first.send_signal(signal.SIGKILL)
        first.wait()
        hub.stall.release.set()
        hub.stall = None
        before = hub.sent.get(f"bench/model/{target}", 0)
        resumed = pull(tmp / "b", hub.url, tmp / "r.toml")
        asked = hub.sent[f"bench/model/{target}"] - before
    print(
        json.dumps(
            {
                "repo_mb": round(total / 2**20, 1),
                "whole_pull_s": round(whole, 2),
                "throughput_mb_s": round(total / 2**20 / whole, 1),
                "check_share": round(hashing / whole, 3),
                "resumed_file_mb": round(len(files[target]) / 2**20, 1),
                "resumed_asked_mb": round(asked / 2**20, 1),
                "resume_saved_ratio": round(1 - asked / len(files[target]), 3),
                "resumed_pull_s": round(resumed, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
