"""The result store: every result is written here (PNG + JSON) before it is sent, so a
client that lost its connection can ``fetch`` it by job id.

Layout: ``<root>/<owner>/<job id>/image-<n>.png`` and ``result.json``. ``owner`` is a hash of
the caller's identity, so one client can never read another's results. Writes go to a
temporary folder that is fsync'd and renamed into place: a reader sees a whole result or none,
and a result the journal (journal.py) was told is stored survives a power cut.

A job that ends without a result (an error, a cancel, lost to a restart) leaves a small
terminal record, ``<root>/<owner>/.ended/<job id>.json``, so a later ``fetch`` answers what
happened instead of ``not_found``. Job ids never start with ``.``, so these folders cannot
collide with a job's.

Every failure of the disk becomes a :class:`StoreError` whose message names the problem and
the fix without the server's paths: it goes to clients as ``store_failed``.
"""

from __future__ import annotations

import contextlib
import errno
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
from ..imageio import ImageFileError, encode_png, read_image
from ..protocol import Array, Cancelled, Error, ErrorCode, JobParams, Result, SfumatoError, Task
from ..protocol._fields import Reader
from ..protocol.multiview import Coverage
from ..protocol.training import Trained
from ..provenance import GenerationFacts, SigningIdentity, sign_png

RESULT_JSON = "result.json"
ENDED = ".ended"  # terminal records of jobs that ended without a result


class StoreError(SfumatoError):
    """The result store cannot keep or give back a job; ``str()`` is safe to send to clients."""

    code = ErrorCode.STORE_FAILED


def disk_problem(exc: OSError, doing: str) -> str:
    """What went wrong on the disk and what to do, without the path (``exc.filename``):
    clients must not learn where the server keeps its files."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        problem = "the disk of the result store is full"
        fix = "free space on it, or point the server's results folder (--results) at a bigger disk"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        problem = "the result store is read-only or not writable by the server"
        fix = "make its results folder writable, or point --results at a writable folder"
    elif code in (errno.EMFILE, errno.ENFILE):
        problem = "the server ran out of file descriptors"
        fix = "raise its limit (ulimit -n) or serve fewer connections at once"
    elif code == errno.EFBIG:
        problem = "a file grew past the server's file size limit"
        fix = "raise the limit (ulimit -f) of the server process"
    else:
        problem = f"the result store failed ({os.strerror(code) if code else type(exc).__name__})"
        fix = "check the disk of the server's results folder (the server log has the details)"
    return f"{doing}: {problem}; {fix}, then submit the job again"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def owner_key(token: str | None, client_id: str) -> str:
    """A folder-safe identity: the token (if any) and the client id, hashed together."""
    digest = hashlib.sha256(f"{token or ''}\0{client_id}".encode()).hexdigest()
    return digest[:24]


class ResultStore:
    def __init__(self, root: Path, png_compression: int = 0) -> None:
        self.root = root
        self.png_compression = png_compression  # 0: fastest (the result is sent sooner)
        self.check_writable()

    def check_writable(self) -> None:
        """Refuse to start on a results folder that cannot be written: better a clear message
        at start than every job failing later. This message is for the admin: it names the path."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"the results folder {self.root} is not usable: {exc.strerror or exc}. "
                "Make it writable by the server, or choose another with --results "
                "(or results = ... in the config file)"
            ) from None

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
        Blocking: call it off the event loop. Raises :class:`StoreError` when the disk fails."""
        try:
            return self._write(owner, result, params, facts, identity)
        except OSError as exc:
            doing = f"could not store the result of job {result.id!r}"
            raise StoreError(disk_problem(exc, doing)) from None

    def _write(
        self,
        owner: str,
        result: Result,
        params: JobParams,
        facts: Sequence[GenerationFacts],
        identity: SigningIdentity | None,
    ) -> tuple[Path, ...]:
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
                    _write_synced(tmp / f"image-{n}.json", json.dumps(sidecar, indent=2).encode())
                _write_synced(tmp / name, png)
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
                "conditioning": _conditioning(facts),
                "timings": result.timings,
                "images": names,
                "coverage": None if result.coverage is None else result.coverage.to_wire(),
                "trained": None if result.trained is None else result.trained.to_wire(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "server_version": __version__,
            }
            _write_synced(tmp / RESULT_JSON, json.dumps(meta, indent=2).encode())
            fsync_dir(tmp)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tuple(final / name for name in names)

    def read(self, owner: str, job_id: str) -> Result | None:
        """The stored result, or None if this owner has none under that id. A damaged one
        (truncated or missing files, bad JSON) raises :class:`StoreError` naming the job."""
        folder = self.folder(owner, job_id)

        def damaged(what: str) -> StoreError:
            return StoreError(
                f"the stored result of job {job_id!r} is damaged ({what}) and cannot be sent "
                "again; submit the job again with a new id"
            )

        try:
            meta: dict[str, Any] = json.loads((folder / RESULT_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise damaged(f"{RESULT_JSON} cannot be read") from None
        try:
            images = []
            for name in meta["images"]:
                try:
                    images.append(Array.from_numpy(read_image(folder / str(name))))
                except (ImageFileError, OSError, ValueError):
                    raise damaged(f"{name} is missing or truncated") from None
            return Result(
                id=meta["id"],
                task=Task(meta["task"]),
                images=tuple(images),
                seeds=tuple(meta["seeds"]),
                model=meta["model"],
                tiny=bool(meta["tiny"]),
                prompt=meta["prompt"],
                timings={k: float(v) for k, v in meta["timings"].items()},
                coverage=_coverage(meta.get("coverage")),
                trained=_trained(meta.get("trained")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise damaged(f"{RESULT_JSON} lacks a field") from None

    # ---------------------------------------------------------------- terminal records

    def _ended_path(self, owner: str, job_id: str) -> Path:
        return self.root / owner / ENDED / f"{job_id}.json"

    def end(self, owner: str, message: Error | Cancelled, durable: bool = True) -> None:
        """Record how a job ended without a result, so ``fetch`` can answer it: durably
        (fsync'd), unless ``durable`` is off — a live job's end, which a crash may forget as
        it forgets the live job itself (not journaled: protocol.md 4.2.7); still written
        whole (renamed into place). Blocking. Raises :class:`StoreError` when the disk fails."""
        record: dict[str, Any] = {"type": message.TYPE, "id": message.id}
        if isinstance(message, Error):
            record |= {"code": message.code.value, "message": message.message}
            record["field"] = message.field
        elif message.reason:  # superseded by a newer live job (protocol.md 4.2.7)
            record["reason"] = message.reason
        record["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        assert message.id is not None, "a terminal record names its job"
        path = self._ended_path(owner, message.id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            write = _write_synced if durable else Path.write_bytes
            write(tmp, json.dumps(record).encode())
            os.replace(tmp, path)
            if durable:
                fsync_dir(path.parent)
        except OSError as exc:
            doing = f"could not record the end of job {message.id!r}"
            raise StoreError(disk_problem(exc, doing)) from None

    def ended(self, owner: str, job_id: str) -> Error | Cancelled | None:
        """How a job without a result ended, if this owner has a record of it."""
        try:
            record = json.loads(self._ended_path(owner, job_id).read_text(encoding="utf-8"))
            if record["type"] == Cancelled.TYPE:
                return Cancelled(job_id, str(record.get("reason", "")))
            return Error(ErrorCode(record["code"]), str(record["message"]), id=job_id,
                         field=record.get("field"))  # fmt: skip
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return Error(
                ErrorCode.STORE_FAILED,
                f"the record of how job {job_id!r} ended is damaged; submit it again",
                id=job_id,
            )

    def forget_end(self, owner: str, job_id: str) -> None:
        """A job id used again: its old terminal record no longer describes it."""
        with contextlib.suppress(FileNotFoundError):
            self._ended_path(owner, job_id).unlink()


def _conditioning(facts: Sequence[GenerationFacts]) -> dict[str, Any] | None:
    """What besides ``params`` steered the job, as its content credentials record it (the
    same for every image): LoRAs, ControlNets, references (adapter, encoder, weight,
    schedule, kind) and regions (words, LoRAs) with their weights hashes, and each input
    picture's or mask's sha256 — kept here too, so a store without credentials (``credentials
    = false``) still says what made each result. None when there are no facts."""
    if not facts:
        return None
    first = facts[0]
    return {
        "loras": list(first.loras), "controlnets": list(first.controlnets),
        "references": list(first.references), "regions": list(first.regions),
        "inputs": dict(first.inputs),
    }  # fmt: skip


def _coverage(stored: Any) -> Coverage | None:
    """A multiview result's coverage as result.json keeps it (absent: any other task)."""
    if stored is None:
        return None
    return Coverage(float(stored["covered"]), tuple(float(v) for v in stored["views"]))


def _trained(stored: Any) -> Trained | None:
    """A train job's registry entry as result.json keeps it (absent: any other task)."""
    if stored is None:
        return None
    return Trained.from_wire(Reader(stored, "trained"))
