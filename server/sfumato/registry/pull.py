"""``sfumato models pull``: a registry entry's weights from the hub, checked before they count.

Why not ``snapshot_download``: the installed huggingface_hub (2.x) downloads each file to a
process-unique temporary name and deletes it when the process stops, so a pull of a 5 GB model
interrupted at 90 % starts again from zero; and it writes straight into the cache, so weights
that fail the registry's sha256 pin would already have replaced the approved ones. Here each
file goes to a staging folder under a stable ``.part`` name and resumes with an HTTP Range
request (huggingface_hub's own ``http_get`` does the transfer, its retries and its progress bar);
only when the whole set matches the pin (registry/digest.py, the definition the engine checks)
does it move into place (registry/placing.py): the Hugging Face cache's layout (blobs,
snapshot links, refs/main), or a plain diffusers folder for ``--to DIR``. No torch: this runs beside a server or on a
machine without a GPU.

An entry with a ``weight`` (IP-Adapters and image encoders: a file or folder of a repo several
entries share, such as h94/IP-Adapter) fetches only that path, is pinned as that path, and
merges into the repo's snapshot: the snapshot's files outside that path (another entry's) are
kept when the hub's commit still holds them unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..protocol.errors import SfumatoError
from .digest import file_sha256, is_weight, pin_of
from .hubfiles import (
    Snapshot,
    cached_snapshot,
    components,
    has_weight,
    repo_folder,
    snapshot_from_api,
)
from .placing import into_cache, into_folder, same, size_of
from .rules import ModelEntry, Registry
from .weights import hub_cache

STAGING = ".sfumato-pull"  # inside the destination, so moving a finished file is a rename
Say = Callable[[str], None]


class PullError(SfumatoError):
    """A pull that could not finish; the message names what failed and what to do."""


class PinMismatch(PullError):
    """Downloaded weights that are not the approved ones: nothing was replaced."""

    def __init__(self, message: str, found: str) -> None:
        super().__init__(message)
        self.found = found


@dataclass(frozen=True)
class Pulled:
    """What one entry's pull left on disk."""

    entry: ModelEntry
    path: Path  # the snapshot folder or the --to folder
    size: int
    digest: str  # the folder's pin (registry/digest.py)
    fetched: int  # bytes transferred by this run (0: everything was already here)


def endpoint() -> str:
    """The hub the pull talks to: ``$HF_ENDPOINT`` (a mirror) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def family(registry: Registry, entry: ModelEntry) -> list[ModelEntry]:
    """``entry`` and, for a base model, the registry's ControlNets, preview decoders and
    IP-Adapters of its family that have hub sources, each adapter with the image encoder it
    names (its VAE lives in the base repo's ``vae/`` and comes with it). An encoder the
    registry lacks is left out (a reference job names it: adapters.py). Tiny entries are
    built locally and never pulled."""
    if entry.kind != "base" or entry.tiny:  # a tiny base's parts are tiny too (built locally)
        return [entry]
    extra = [
        e
        for e in registry.entries.values()
        if e.kind in ("controlnet", "preview", "ip_adapter")
        and e.family == entry.family
        and e.scheme == "hub"
    ]
    for adapter in [e for e in extra if e.kind == "ip_adapter"]:
        encoder = registry.entries.get(adapter.encoder)
        if encoder is not None and encoder.scheme == "hub" and encoder not in extra:
            extra.append(encoder)
    return [entry, *sorted(extra, key=lambda e: (e.kind, e.name))]


def pull(entry: ModelEntry, *, to: Path | None = None, say: Say = print) -> Pulled:
    """Fetch ``entry``'s weights into the hub cache (``to`` None) or ``to/<name>``.

    Raises :class:`PullError` (hub unreachable, offline, unknown repo) or :class:`PinMismatch`
    (the download is not what the registry approved; the old files stay)."""
    if entry.scheme != "hub":
        raise PullError(_not_pullable(entry))
    snapshot = remote(entry.location, weight=entry.weight)
    dest = Path(to).expanduser().resolve() / entry.name if to else None
    root = dest.parent if dest else hub_cache()
    root.mkdir(parents=True, exist_ok=True)
    # one staging folder (and lock) per repo in the cache: entries sharing a repo share its
    # snapshot folder, so their pulls take turns
    stage = root / STAGING / (entry.name if dest else repo_folder(root, entry.location).name)
    what = f"{entry.location}: {entry.weight}" if entry.weight else entry.location
    say(
        f"pulling {entry.name} ({what} @ {snapshot.commit[:12]}): "
        f"{len(snapshot.files)} files, {human(snapshot.size)} → {dest or hub_cache()}"
    )
    with _only_pull(stage, entry):
        have = _already_here(snapshot, dest, root)
        fetched = _fetch(snapshot, stage / snapshot.commit, have, say)
        local = {
            f.path: have.get(f.path) or stage / snapshot.commit / f.path for f in snapshot.files
        }
        digest = _check(entry, snapshot, local, stage / snapshot.commit, say)
        path = (
            into_cache(snapshot, local, root, stage, entry.weight, say)
            if dest is None
            else into_folder(local, dest, stage)
        )
        shutil.rmtree(stage, ignore_errors=True)
    size = sum(f.size for f in snapshot.files)
    return Pulled(entry, path, size, digest, fetched)


@contextlib.contextmanager
def _only_pull(stage: Path, entry: ModelEntry) -> Iterator[None]:
    """One pull per staging folder: two would append to the same ``.part`` files."""
    from filelock import FileLock, Timeout  # huggingface_hub's own dependency

    stage.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(stage.parent / f"{stage.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise PullError(
            f"another `sfumato models pull` of {entry.name!r} is running (it holds "
            f"{lock.lock_file}); let it finish, or stop it and run this again: it resumes"
        ) from None
    try:
        yield
    finally:
        lock.release()


def remote(repo: str, revision: str = "main", weight: str = "") -> Snapshot:
    """The repo's commit at ``revision`` and the files to fetch (one hub API request; with
    ``weight``, only that file or folder's)."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:  # pragma: no cover - the server extras bring it
        raise PullError(
            "pulling models needs huggingface_hub; install the server: pip install 'sfumato[server]'"
        ) from exc
    _refuse_offline()
    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:
        raise _hub_error(exc, f"{endpoint()}/api/models/{repo}", repo) from exc
    if not info.sha:
        raise PullError(f"{endpoint()} gave no commit for {repo}; retry, or check HF_ENDPOINT")
    siblings = info.siblings or ()
    if weight:
        snap = snapshot_from_api(repo, info.sha, siblings, weight=weight)
        if not snap.files:
            raise PullError(
                f"{repo} at {endpoint()} @ {info.sha[:12]} has no file or folder {weight!r}; "
                "check the registry entry's weight (a path inside the repo, as the hub's "
                f"file list at {endpoint()}/{repo}/tree/main shows it)"
            )
        return snap
    parts = None
    if any(getattr(s, "rfilename", "") == "model_index.json" for s in siblings):
        parts = components(_small_file(repo, info.sha, "model_index.json"))
    snap = snapshot_from_api(repo, info.sha, siblings, parts)
    if not any(is_weight(f.path) for f in snap.files):
        raise PullError(
            f"{repo} at {endpoint()} holds no weights in diffusers' layout (*.safetensors or "
            "*.bin under the model's folders); point the registry entry at a diffusers repo"
        )
    return snap


def _small_file(repo: str, commit: str, path: str) -> str:
    """One small file's text, read straight from the hub (not cached: a half-pulled model
    must not look present)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo, path, revision=commit, endpoint=endpoint())
    try:
        response = get_session().get(url, headers=build_hf_headers(), follow_redirects=True)
        hf_raise_for_status(response)
    except Exception as exc:
        raise _hub_error(exc, url, repo) from exc
    return str(response.text)


def _already_here(snapshot: Snapshot, dest: Path | None, root: Path) -> dict[str, Path]:
    """Files of this snapshot already in place with the right size: not fetched again."""
    found: dict[str, Path] = {}
    for f in snapshot.files:
        if dest is not None:
            where: Path | None = dest / f.path
        else:  # a blob is named by its content (sha256 / git id): the same name, the same file
            where = repo_folder(root, snapshot.repo) / "blobs" / f.blob if f.blob else None
        if where is None or not where.is_file() or where.stat().st_size != f.size:
            continue
        if dest is None or same(where, f):  # a folder's file is only a name: check its bytes
            found[f.path] = where
    return found


def _fetch(snapshot: Snapshot, stage: Path, have: dict[str, Path], say: Say = print) -> int:
    """Download the missing files into ``stage``, each resumed from its ``.part``."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    if stage.parent.is_dir():  # staging left by a pull of an older commit: useless now
        for old in stage.parent.iterdir():
            if old.name != stage.name:
                shutil.rmtree(old, ignore_errors=True)
    todo = [
        f
        for f in snapshot.files
        if f.path not in have
        and not ((stage / f.path).is_file() and (stage / f.path).stat().st_size == f.size)
    ]
    partial = sum(size_of(stage / (f.path + ".part")) for f in todo)
    room(sum(f.size for f in todo) - partial, stage)
    fetched = 0
    headers = build_hf_headers()
    for f in todo:
        target = stage / f.path
        part = target.with_name(target.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        done = part.stat().st_size if part.exists() else 0
        if done > f.size:
            part.unlink()
            done = 0
        url = hf_hub_url(snapshot.repo, f.path, revision=snapshot.commit, endpoint=endpoint())
        try:
            with part.open("ab") as out:
                http_get(
                    url,
                    out,
                    resume_size=done,
                    headers=headers,
                    expected_size=f.size,
                    displayed_filename=f.path,
                )
        except KeyboardInterrupt:
            say(
                f"interrupted: {human(size_of(part))} of {f.path} kept in {stage}; run the same pull to resume"
            )
            raise
        except Exception as exc:
            raise _hub_error(exc, url, snapshot.repo, resumable=True) from exc
        if f.sha256 and file_sha256(part) != f.sha256:
            part.unlink()
            raise PullError(
                f"{f.path} of {snapshot.repo} arrived damaged (its sha256 is not the hub's); "
                "the partial file was removed: run the same pull again"
            )
        fetched += f.size - done
        os.replace(part, target)
    return fetched


def room(needed: int, folder: Path) -> None:
    """Refuse a download the disk cannot hold, before any byte of it is fetched."""
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if needed > free:
        raise PullError(
            f"the download needs {human(needed)} but {where} has {human(free)} free; free some "
            'space, or pull elsewhere: --to DIR on a larger disk (then source = "dir:…"), or '
            "HF_HUB_CACHE=/path/on/a/larger/disk for the Hugging Face cache"
        )


def _check(
    entry: ModelEntry, snapshot: Snapshot, local: dict[str, Path], stage: Path, say: Say
) -> str:
    """The pin over the weight files (registry/digest.py ``pin_of``: for an entry with a
    ``weight``, that file or folder, as the engine hashes it); a mismatch removes the download.

    The files fetched are everything the snapshot will hold at the pinned path: for a
    ``weight`` entry the files outside it are another entry's and count in its pin only."""
    weights = [f for f in snapshot.files if is_weight(f.path) or f.path == entry.weight]
    where = f" ({entry.weight})" if entry.weight else ""
    say(
        f"checking {len(weights)} weight files{where} against the registry's sha256 pin"
        if entry.sha256
        else f"{entry.name} has no sha256 pin in the registry: each file is checked against "
        "the hub's own sha256 only"
    )
    digest = pin_of(
        {
            # a file staged by this pull was checked against the hub's sha256 when it arrived;
            # one already in place is hashed again (a blob's name is no proof of its bytes)
            f.path: f.sha256
            if f.sha256 and local[f.path].is_relative_to(stage)
            else file_sha256(local[f.path])
            for f in weights
        },
        entry.weight,
    )
    if entry.sha256 and digest != entry.sha256.lower():
        shutil.rmtree(stage, ignore_errors=True)
        raise PinMismatch(
            f"the weights of {entry.name!r} from {snapshot.repo}{where} @ {snapshot.commit[:12]} hash to "
            f"{digest}, but the registry pins {entry.sha256}: the download was removed and the "
            "files already on this machine were kept as they were. If the hub repo changed on "
            "purpose, have the entry re-approved with that sha256; otherwise check HF_ENDPOINT "
            "points at the hub you trust",
            digest,
        )
    return digest


def local_snapshot(entry: ModelEntry) -> Path | None:
    """Where a hub entry's weights are in the local cache (its ``weight`` inside the
    snapshot, for an entry with one), if they are."""
    snap = cached_snapshot(hub_cache(), entry.location) if entry.scheme == "hub" else None
    if snap is None or not has_weight(snap, entry.weight):
        return None
    return snap / entry.weight if entry.weight else snap


def _refuse_offline() -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            raise PullError(
                f"{name}={os.environ[name]} is set, so nothing may be downloaded; unset it "
                f"(`unset {name}`) to pull from {endpoint()}, or pull on a connected machine "
                f"and copy its Hugging Face cache ({hub_cache()}) here"
            )


def _hub_error(exc: Exception, url: str, repo: str, resumable: bool = False) -> PullError:
    """A hub failure as a :class:`PullError` that names the URL, the settings and the fix."""
    name = type(exc).__name__
    again = " Run the same pull again: it resumes where it stopped." if resumable else ""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if name in ("RepositoryNotFoundError", "GatedRepoError") or status in (401, 403, 404):
        return PullError(
            f"{url} answered {status or name}: {repo} does not exist there or needs a login. "
            f"Check the registry's source, accept the model's license at {endpoint()}/{repo} and "
            "log in (`hf auth login`, or set HF_TOKEN)"
        )
    if name == "OfflineModeIsEnabled":
        return PullError(f"huggingface_hub is in offline mode ({exc}); unset HF_HUB_OFFLINE")
    if status is not None:
        return PullError(f"{url} answered HTTP {status}; retry later.{again}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return PullError(
            f"the disk filled up while downloading {url}; free space and run the same pull again: it resumes"
        )
    mirror = os.environ.get("HF_ENDPOINT")
    return PullError(
        f"cannot reach the model hub at {url} ({name}: {str(exc)[:160]}). Check the network "
        + (
            f"and HF_ENDPOINT={mirror} (unset it for huggingface.co)"
            if mirror
            else "or set HF_ENDPOINT to a mirror"
        )
        + f"; or pull on a connected machine and copy its cache ({hub_cache()}) here.{again}"
    )


def _not_pullable(entry: ModelEntry) -> str:
    if entry.scheme == "tiny":
        return f"{entry.name!r} is a tiny model: it is built locally on first use, nothing to pull"
    return (
        f"{entry.name!r} has source {entry.scheme}:{entry.location}, not a hub repo: copy its "
        "weights there, or give it a hub:<repo id> source to pull it"
    )


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover
