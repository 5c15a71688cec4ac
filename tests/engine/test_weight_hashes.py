"""The weights hash cache is shared by every process that uses one cache folder (the Ray
replicas of ``serve --ray``, a front door, ``sfumato models``): several of them hashing at
once must each get the right hashes, and leave one whole, correct file behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HASHER = """
import sys, time
from pathlib import Path
from sfumato.engine.hashing import WeightHashes

cache, folder, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
hashes = WeightHashes(cache)
time.sleep(max(0.0, start - time.time()))  # all of them at once
for path in sorted(folder.iterdir()):
    print(path.name, hashes._file_hash(path), flush=True)
"""


def test_processes_sharing_a_cache_folder_hash_at_once_and_leave_one_whole_file(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    truth: dict[str, str] = {}
    folders = []
    for n in range(3):
        folder = tmp_path / f"weights-{n}"
        folder.mkdir()
        for i in range(60):
            data = os.urandom(256 + i)
            (folder / f"part-{i:02}.safetensors").write_bytes(data)
            truth[f"{folder.name}/part-{i:02}.safetensors"] = hashlib.sha256(data).hexdigest()
        folders.append(folder)
    start = time.time() + 8.0  # after each process has imported the engine
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HASHER, str(cache), str(folder), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in folders
    ]
    for folder, proc in zip(folders, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        got = dict(line.split() for line in out.splitlines())
        assert got == {k.split("/")[1]: v for k, v in truth.items() if k.startswith(folder.name)}
    saved = json.loads((cache / "weight-hashes.json").read_text(encoding="utf-8"))
    by_name = {key.split("|")[0]: digest for key, digest in saved.items()}
    assert by_name, "nothing was saved"
    for path, digest in by_name.items():
        rel = "/".join(Path(path).parts[-2:])
        assert truth[rel] == digest, f"{path} saved with a wrong hash"
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp")), (
        "a temporary file was left"
    )
