"""The result store: every result is written here (PNG + JSON) before it is sent, so a
client that lost its connection can ``fetch`` it by job id.

Layout: ``<root>/<owner>/<job id>/image-<n>.png`` and ``result.json``. ``owner`` is a hash of
the caller's identity, so one client can never read another's results. Writes go to a
temporary folder that is renamed into place: a reader sees a whole result or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import __version__
from ..imageio import encode_png, read_image
from ..protocol import Array, JobParams, Result, Task
from ..provenance import GenerationFacts, SigningIdentity, sign_png

RESULT_JSON = "result.json"


def owner_key(token: str | None, client_id: str) -> str:
    """A folder-safe identity: the token (if any) and the client id, hashed together."""
    digest = hashlib.sha256(f"{token or ''}\0{client_id}".encode()).hexdigest()
    return digest[:24]


class ResultStore:
    def __init__(self, root: Path, png_compression: int = 0) -> None:
        self.root = root
        self.png_compression = png_compression  # 0: fastest (the result is sent sooner)
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, owner: str, job_id: str) -> Path:
        return self.root / owner / job_id

    def exists(self, owner: str, job_id: str) -> bool:
        return (self.folder(owner, job_id) / RESULT_JSON).is_file()

    def write(
        self,
        owner: str,
        result: Result,
        params: JobParams,
        facts: Sequence[GenerationFacts] = (),
        identity: SigningIdentity | None = None,
    ) -> tuple[Path, ...]:
        """Write atomically; returns the image paths. With ``facts`` and an ``identity`` each
        PNG carries signed content credentials and gets a JSON sidecar with the same facts.
        Blocking: call it off the event loop."""
        final = self.folder(owner, result.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{result.id}-", dir=final.parent))
        try:
            names = []
            for n, image in enumerate(result.images):
                name = f"image-{n}.png"
                png = encode_png(image.to_numpy(), self.png_compression)
                if identity is not None and n < len(facts):
                    png = sign_png(png, facts[n], identity, title=f"{result.id}-{n}.png")
                    sidecar = {
                        "credentials": facts[n].to_dict(),
                        "development_signer": identity.development,
                    }
                    (tmp / f"image-{n}.json").write_text(
                        json.dumps(sidecar, indent=2), encoding="utf-8"
                    )
                (tmp / name).write_bytes(png)
                names.append(name)
            meta = {
                "id": result.id,
                "task": result.task.value,
                "prompt": result.prompt,
                "negative": params.negative,
                "seeds": list(result.seeds),
                "model": result.model,
                "tiny": result.tiny,
                "params": asdict(params),
                "timings": result.timings,
                "images": names,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "server_version": __version__,
            }
            (tmp / RESULT_JSON).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tuple(final / name for name in names)

    def read(self, owner: str, job_id: str) -> Result | None:
        """The stored result, or None if this owner has none under that id."""
        folder = self.folder(owner, job_id)
        try:
            meta: dict[str, Any] = json.loads((folder / RESULT_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        images = [Array.from_numpy(read_image(folder / name)) for name in meta["images"]]
        return Result(
            id=meta["id"],
            task=Task(meta["task"]),
            images=tuple(images),
            seeds=tuple(meta["seeds"]),
            model=meta["model"],
            tiny=bool(meta["tiny"]),
            prompt=meta["prompt"],
            timings={k: float(v) for k, v in meta["timings"].items()},
        )
