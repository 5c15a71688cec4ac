"""`sfumato approve NAME` takes effect without a restart (issue 14, service/registry_watch.py):
a real ``sfumato serve --registry FILE`` on loopback refuses a planted unapproved LoRA with
``not_approved``; the real CLI approves it (a subprocess); the same job is then accepted and
finishes on the same server process, and welcome lists the entry approved. A broken edit of
the file leaves the server serving the registry it had, and its log says why."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sfumato.client import make_job
from sfumato.protocol import Error, ErrorCode, ListModels, LoraRef, Models, Result
from sfumato.registry import Registry
from sfumato.service.registry_watch import weights_changed

from .conftest import Peer, finished
from .procs import ServerProcess

pytestmark = pytest.mark.slow

REGISTRY = """\
include_builtin = true

[models."house-style"]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
license = "House licence 7"
approved = false
description = "planted as train-lora leaves a LoRA: unapproved"
"""


def _approved(peer: Peer, name: str) -> bool | None:
    peer.send(ListModels())
    models = peer.until(lambda m: isinstance(m, Models))[-1]
    assert isinstance(models, Models)
    return next((m.approved for m in models.models if m.name == name), None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sfumato.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_approve_takes_effect_on_the_running_server(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY)
    server = serve("--registry", str(registry))
    peer = Peer(server.url)
    welcome = peer.hello()
    assert {m.name: m.approved for m in welcome.models}["house-style"] is False
    job = make_job(
        "generate", prompt="x", width=64, height=64, steps=2, seed=1,
        loras=(LoraRef("house-style", 0.8),),
    )  # fmt: skip
    peer.send(job)
    refused = peer.until(finished(job.id))[-1]
    assert isinstance(refused, Error) and refused.code is ErrorCode.NOT_APPROVED, refused

    done = _cli("approve", "house-style", "--registry", str(registry))
    assert done.returncode == 0, done.stderr
    assert "next hello" in done.stderr, done.stderr
    assert "approved = true" in registry.read_text()

    peer.send(job)  # the same job, on the same connection of the same server process
    result = peer.until(finished(job.id))[-1]
    assert isinstance(result, Result), result
    assert server.proc.poll() is None
    again = Peer(server.url)
    assert {m.name: m.approved for m in again.hello().models}["house-style"] is True
    log = server.log()
    assert "approval changed: house-style" in log
    assert "the engine unloads" not in log  # an approval changes no weights: all stays loaded
    again.close()
    peer.close()


def test_a_broken_edit_keeps_the_old_registry_and_is_logged(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY.replace("approved = false", "approved = true"))
    server = serve("--registry", str(registry))
    peer = Peer(server.url)
    peer.hello()
    assert _approved(peer, "house-style") is True

    broken = registry.read_text().replace('kind = "lora"', 'kind = "lora"\nkind = "base"')
    tmp = registry.with_name("edit.tmp")
    tmp.write_text(broken)
    os.replace(tmp, registry)  # an editor's save: a duplicate key, so not valid TOML
    assert _approved(peer, "house-style") is True  # the old registry still serves
    job = make_job(
        "generate", prompt="x", width=64, height=64, steps=1, seed=2,
        loras=(LoraRef("house-style", 0.5),),
    )  # fmt: skip
    peer.send(job)
    assert isinstance(peer.until(finished(job.id))[-1], Result)
    log = server.log()
    assert log.count("changed but cannot be used") == 1, log[-3000:]  # once per change
    assert "not valid TOML" in log and "keeps serving the registry it read before" in log

    fixed = REGISTRY  # fixed, and unapproved again: the server follows the file once more
    tmp.write_text(fixed)
    os.replace(tmp, registry)
    assert _approved(peer, "house-style") is False
    peer.send(make_job("generate", prompt="x", width=64, height=64, steps=1, id=job.id + "-2",
                       loras=(LoraRef("house-style", 0.5),)))  # fmt: skip
    refused = peer.until(finished(job.id + "-2"))[-1]
    assert isinstance(refused, Error) and refused.code is ErrorCode.NOT_APPROVED, refused
    assert server.proc.poll() is None
    peer.close()


def test_only_an_entry_whose_weights_changed_or_left_unloads_the_engine() -> None:
    """Pure: approval, license and description are policy; a source or a pin is weights."""
    old = Registry.parse(REGISTRY, builtin=Registry.load())
    same = REGISTRY.replace("approved = false", "approved = true").replace(
        "House licence 7", "House licence 8"
    )
    assert weights_changed(old, Registry.parse(same, builtin=Registry.load())) == ()
    pinned = REGISTRY + f'sha256 = "{"1" * 64}"\n'
    assert weights_changed(old, Registry.parse(pinned, builtin=Registry.load())) == ("house-style",)
    gone = REGISTRY.split("[models.")[0] + 'default = "tiny-sd"\n'
    assert weights_changed(old, Registry.parse(gone, builtin=Registry.load())) == ("house-style",)
