"""``sfumato models pull`` and the local listing (issue 15 item 1), against a local HTTP server
that speaks the hub API huggingface_hub uses (tests/fakehub.py): the real CLI in a subprocess,
the real huggingface_hub transfer code, no internet."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.registry.hubfiles import components, select

from .fakehub import FakeHub, Stall, fake_hub

BIG = 24 * 1024 * 1024  # over huggingface_hub's 10 MiB chunk: a kill mid-file leaves bytes on disk


def registry(tmp: Path, **sources: tuple[str, str]) -> Path:
    """A registry with a tiny default and ``name=(kind, "hub:repo")`` entries (+ ``pin`` fields)."""
    lines = [
        'default = "tiny"',
        '[models.tiny]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"',
    ]
    for name, (kind, source, *pin) in sources.items():
        control = '\ncontrol = "depth"' if kind == "controlnet" else ""
        sha = f'\nsha256 = "{pin[0]}"' if pin else ""
        lines.append(
            f'[models.{name}]\nkind = "{kind}"\nfamily = "sd15"\nsource = "{source}"{control}{sha}'
        )
    path = tmp / "registry.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(tmp: Path, hub: FakeHub | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "models", *args],
        env=hub_env(tmp, hub, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def hub_env(tmp: Path, hub: FakeHub | None, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_HUB_CACHE=str(tmp / "hub"), HF_HOME=str(tmp / "hf-home"), **extra)
    env.pop("HF_TOKEN", None)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    return env


def listing(tmp: Path, reg: Path) -> dict[str, dict[str, object]]:
    """``sfumato models --json`` in this process (the listing reads $HF_HUB_CACHE per call)."""
    from sfumato.cli.main import main

    out = io.StringIO()
    before = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(tmp / "hub")
    try:
        with contextlib.redirect_stdout(out):
            assert main(["models", "--registry", str(reg), "--json"]) == 0
    finally:
        if before is None:
            del os.environ["HF_HUB_CACHE"]
        else:
            os.environ["HF_HUB_CACHE"] = before
    return {m["name"]: m for m in json.loads(out.getvalue())["models"]}


def manifest(files: dict[str, bytes]) -> str:
    """The pin, computed here independently: sha256sum lines of the weight files, sorted."""
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {path}\n"
        for path, data in sorted(files.items(), key=lambda kv: kv[0].split("/"))
        if path.endswith((".safetensors", ".bin"))
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with fake_hub() as h:
        yield h


def test_pull_with_family_lands_in_the_cache_listed_present_and_diffusers_loads_it_offline(
    tmp_path: Path, hub: FakeHub, tiny_sd15: Path
) -> None:
    distractors = {  # what a real SD repo also holds and a diffusers load never reads
        "v1-5-pruned.safetensors": b"single-file" * 100,
        "unet/diffusion_pytorch_model.fp16.safetensors": b"half" * 100,
        "unet/diffusion_pytorch_model.bin": b"pickle" * 100,
        "safety_checker/model.safetensors": b"checker" * 100,
        "vae_1_0/diffusion_pytorch_model.safetensors": b"older vae" * 100,  # not in model_index
        "vae_1_0/config.json": b"{}",
        "README.md": b"# card",
    }
    hub.put_folder("org/base", tiny_sd15, distractors)
    control = {"config.json": b'{"a": 1}', "diffusion_pytorch_model.safetensors": os.urandom(5000)}
    hub.put("org/control", control)
    hub.put(
        "org/preview", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"p" * 999}
    )
    reg = registry(
        tmp_path,
        real=("base", "hub:org/base"),
        depth=("controlnet", "hub:org/control"),
        fast=("preview", "hub:org/preview"),
    )
    before = listing(tmp_path, reg)
    assert not before["real"]["present"] and before["real"]["size"] is None
    assert before["real"]["fix"] == f"sfumato models pull real --registry {reg}"
    table = run(tmp_path, None, "--registry", str(reg), HF_HUB_OFFLINE="1").stdout
    assert f"missing  → sfumato models pull depth --registry {reg}" in table

    proc = run(
        tmp_path, hub, "pull", "real", "--with-family", "--registry", str(reg), TQDM_POSITION="-1"
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "unet/diffusion_pytorch_model.safetensors" in proc.stderr and "100%" in proc.stderr
    )  # bars

    fetched = {
        s.path.rsplit("/resolve/", 1)[1].split("/", 1)[1] for s in hub.seen if "/resolve/" in s.path
    }
    for name in distractors:
        assert name not in fetched, f"{name} is not part of a diffusers load and was downloaded"
    after = listing(tmp_path, reg)
    assert all(after[n]["present"] for n in ("real", "depth", "fast"))
    parts = components((tiny_sd15 / "model_index.json").read_text())
    wanted = {p: (tiny_sd15 / p).read_bytes() for p in select(hub.repos["org/base"], parts)}
    assert after["real"]["size"] == sum(len(d) for d in wanted.values())
    assert f"sha256 {manifest(wanted)}" in proc.stdout  # the pin is over exactly those bytes
    assert f"sha256 {manifest(control)}" in proc.stdout

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        "org/base", cache_dir=tmp_path / "hub", local_files_only=True, safety_checker=None
    )
    assert (
        pipe.unet.config.sample_size
        == StableDiffusionPipeline.from_pretrained(
            tiny_sd15, safety_checker=None
        ).unet.config.sample_size
    )

    again = run(tmp_path, hub, "pull", "depth", "--registry", str(reg))
    assert again.returncode == 0 and "depth: already here" in again.stdout, again.stderr


def test_a_pull_killed_mid_file_resumes_with_a_range_request(tmp_path: Path, hub: FakeHub) -> None:
    weights = os.urandom(BIG)
    hub.put("org/big", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": weights})
    reg = registry(tmp_path, big=("controlnet", "hub:org/big"))
    hub.stall = Stall("org/big", "diffusion_pytorch_model.safetensors", after=BIG * 3 // 4)
    first = subprocess.Popen(
        [sys.executable, "-m", "sfumato.cli", "models", "pull", "big", "--registry", str(reg)],
        env=hub_env(tmp_path, hub),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert hub.stall.reached.wait(60), "the first pull never reached the file"
    part = next(iter((tmp_path / "hub").rglob("*.part")), None)
    deadline = time.monotonic() + 30
    while (part is None or part.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        part = next(iter((tmp_path / "hub").rglob("*.part")), None)
    assert part is not None and part.stat().st_size > 0
    first.send_signal(signal.SIGKILL)  # an interruption nothing can clean up after
    first.wait(10)
    kept = part.stat().st_size
    hub.stall.release.set()
    hub.stall = None

    assert not listing(tmp_path, reg)["big"]["present"], "a partial download counts as absent"
    second = run(tmp_path, hub, "pull", "big", "--registry", str(reg))
    assert second.returncode == 0, second.stderr
    ranges = [s.range for s in hub.downloads("diffusion_pytorch_model.safetensors")]
    assert ranges == [None, f"bytes={kept}-"], "the second pull must ask only for the rest"
    snap = Path(str(listing(tmp_path, reg)["big"]["where"]))
    assert (snap / "diffusion_pytorch_model.safetensors").read_bytes() == weights


@pytest.mark.parametrize("to_folder", [False, True])
def test_a_pin_mismatch_keeps_the_old_files_and_says_how_to_fix(
    tmp_path: Path, hub: FakeHub, to_folder: bool
) -> None:
    approved = {"config.json": b"{}", "diffusion_pytorch_model.safetensors": os.urandom(4096)}
    hub.put("org/cn", approved)
    pin = manifest(approved)
    reg = registry(tmp_path, cn=("controlnet", "hub:org/cn", pin))
    where = ["--to", str(tmp_path / "models")] if to_folder else []
    assert run(tmp_path, hub, "pull", "cn", "--registry", str(reg), *where).returncode == 0

    changed = {**approved, "diffusion_pytorch_model.safetensors": os.urandom(4096)}
    hub.put("org/cn", changed)  # the repo moved on: a new commit with other weights
    proc = run(tmp_path, hub, "pull", "cn", "--registry", str(reg), *where)
    assert proc.returncode == 1
    assert manifest(changed) in proc.stderr and pin in proc.stderr
    assert "kept" in proc.stderr and "re-approved" in proc.stderr
    folder = (
        tmp_path / "models" / "cn"
        if to_folder
        else Path(str(listing(tmp_path, reg)["cn"]["where"]))
    )
    assert (folder / "diffusion_pytorch_model.safetensors").read_bytes() == approved[
        "diffusion_pytorch_model.safetensors"
    ]
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".sfumato-pull/*/*"))


def test_an_unreachable_or_offline_hub_names_the_url_the_setting_and_the_fix(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = registry(tmp_path, real=("base", "hub:org/base"))
    proc = run(
        tmp_path,
        None,
        "pull",
        "real",
        "--registry",
        str(reg),
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
    )
    assert proc.returncode == 1
    assert f"http://127.0.0.1:{port}/api/models/org/base" in proc.stderr
    assert "HF_ENDPOINT" in proc.stderr and "connected machine" in proc.stderr
    offline = run(tmp_path, None, "pull", "real", "--registry", str(reg), HF_HUB_OFFLINE="1")
    assert (
        offline.returncode == 1
        and "HF_HUB_OFFLINE=1" in offline.stderr
        and "unset" in offline.stderr
    )
    unknown = run(tmp_path, None, "pull", "nope", "--registry", str(reg), HF_HUB_OFFLINE="1")
    assert unknown.returncode == 1 and "unknown model 'nope'" in unknown.stderr
    tiny = run(tmp_path, None, "pull", "tiny", "--registry", str(reg), HF_HUB_OFFLINE="1")
    assert tiny.returncode == 0 and "nothing to pull" in tiny.stdout


def test_a_missing_repo_says_to_check_the_source_and_log_in(tmp_path: Path, hub: FakeHub) -> None:
    reg = registry(tmp_path, gone=("base", "hub:org/gone"))
    proc = run(tmp_path, hub, "pull", "gone", "--registry", str(reg))
    assert proc.returncode == 1 and "org/gone" in proc.stderr and "HF_TOKEN" in proc.stderr


FOLDERS = st.sampled_from(["", "unet/", "vae/", "text_encoder/", "safety_checker/", "controlnet/"])
NAMES = st.sampled_from(
    ["diffusion_pytorch_model", "model", "pytorch_model", "v1-5-pruned", "taesd_decoder"]
)
VARIANTS = st.sampled_from(["", ".fp16", ".non_ema", "-00001-of-00002"])
SUFFIXES = st.sampled_from(
    [".safetensors", ".bin", ".ckpt", ".pth", ".json", ".txt", ".md", ".yaml"]
)
PATHS = st.builds(lambda f, n, v, s: f + n + v + s, FOLDERS, NAMES, VARIANTS, SUFFIXES)


PARTS = st.none() | st.sets(st.sampled_from(["unet", "vae", "text_encoder", "safety_checker"]))


@given(paths=st.lists(PATHS, unique=True, max_size=30), pipeline=st.booleans(), parts=PARTS)
def test_selection_keeps_configs_and_one_plain_weight_format_per_folder(
    paths: list[str], pipeline: bool, parts: set[str] | None
) -> None:
    if pipeline:
        paths = ["model_index.json", *paths]
    chosen = select(paths, parts)
    if pipeline and parts is not None:  # only the folders model_index.json names
        assert all("/" not in p or p.split("/")[0] in parts for p in chosen)
        paths = [p for p in paths if "/" not in p or p.split("/")[0] in parts]
    assert chosen == [p for p in paths if p in chosen], "a subset, in the repo's order"
    assert [p for p in paths if p.endswith((".json", ".txt"))] == [
        p for p in chosen if p.endswith((".json", ".txt"))
    ]
    weights = [p for p in chosen if not p.endswith((".json", ".txt"))]
    for p in weights:
        name = p.rsplit("/", 1)[-1]
        assert "." not in name.rsplit(".", 1)[0] or "-0000" in name, f"{p} is a variant"
        assert p.endswith((".safetensors", ".bin")) and not p.startswith("safety_checker/")
        assert not (pipeline and "/" not in p), "a pipeline repo's root checkpoints are left out"
        folder = p.rpartition("/")[0]
        if p.endswith(".bin"):
            assert not any(
                q.rpartition("/")[0] == folder and q.endswith(".safetensors") for q in weights
            )
    for p in paths:  # nothing loadable is dropped: a plain safetensors in a model folder stays
        name = p.rsplit("/", 1)[-1]
        plain = p.endswith(".safetensors") and "." not in name[: -len(".safetensors")]
        if plain and not p.startswith("safety_checker/") and not (pipeline and "/" not in p):
            assert p in chosen


@pytest.fixture(scope="module")
def tiny_sd15(model_cache: Path) -> Path:
    """The tiny SD1.5 pipeline folder (built once per session): a real model to publish."""
    from sfumato.engine.tiny import ensure_tiny

    return ensure_tiny(model_cache, "sd15")


def test_the_listing_reads_the_registry_serve_would_read_from_a_config_file(
    tmp_path: Path,
) -> None:
    reg = registry(tmp_path, studio=("base", "hub:org/studio-model"))
    (tmp_path / "sfumato.toml").write_text('[server]\nregistry = "registry.toml"\n')
    proc = run(
        tmp_path, None, "--config", str(tmp_path / "sfumato.toml"), "--json", HF_HUB_OFFLINE="1"
    )
    assert proc.returncode == 0, proc.stderr
    names = {m["name"]: m for m in json.loads(proc.stdout)["models"]}
    assert set(names) == {"tiny", "studio"}, "the config's registry, not the built-in one"
    assert names["studio"]["fix"] == f"sfumato models pull studio --registry {reg}"
    assert names["tiny"]["present"] and names["tiny"]["fix"] == ""


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as real_shutil
    from collections import namedtuple

    from sfumato.registry import pull as pull_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(real_shutil, "disk_usage", lambda _p: usage(10**12, 0, 5 * 10**9))
    pull_module.room(5 * 10**9, tmp_path / "not" / "made" / "yet")  # fits exactly
    with pytest.raises(pull_module.PullError) as caught:
        pull_module.room(7 * 10**9, tmp_path / "not" / "made" / "yet")
    text = str(caught.value)
    assert "7.0 GB" in text and "5.0 GB free" in text and str(tmp_path) in text
    assert "--to DIR" in text and "HF_HUB_CACHE" in text


def test_a_second_pull_of_the_same_model_at_once_is_refused(tmp_path: Path, hub: FakeHub) -> None:
    from filelock import FileLock

    hub.put("org/cn", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"w" * 64})
    reg = registry(tmp_path, cn=("controlnet", "hub:org/cn"))
    staging = tmp_path / "hub" / ".sfumato-pull"
    staging.mkdir(parents=True)
    with FileLock(str(staging / "models--org--cn.lock")):  # as a running pull holds it
        busy = run(tmp_path, hub, "pull", "cn", "--registry", str(reg))
    assert busy.returncode == 1 and "another `sfumato models pull` of 'cn'" in busy.stderr
    assert not listing(tmp_path, reg)["cn"]["present"]
    assert run(tmp_path, hub, "pull", "cn", "--registry", str(reg)).returncode == 0
    assert listing(tmp_path, reg)["cn"]["present"]


ADAPTER = "models/ip-adapter_sd15.safetensors"
ENCODER = "models/image_encoder"


def shared_repo() -> dict[str, bytes]:
    """An h94/IP-Adapter-shaped repo: two entries' weights and big files neither loads."""
    return {
        ADAPTER: os.urandom(3000),
        f"{ENCODER}/config.json": b'{"hidden_size": 8}',
        f"{ENCODER}/model.safetensors": os.urandom(5000),
        f"{ENCODER}/pytorch_model.bin": os.urandom(5000),  # the twin a load never reads
        "models/ip-adapter-plus_sd15.safetensors": os.urandom(7000),
        "sdxl_models/ip-adapter_sdxl.safetensors": os.urandom(9000),
        "sdxl_models/image_encoder/model.safetensors": os.urandom(6000),
        "README.md": b"# card",
    }


def adapter_registry(tmp: Path, adapter_pin: str = "", encoder_pin: str = "") -> Path:
    """A registry whose IP-Adapter and image encoder share one hub repo (as builtin.py's do)."""
    pins = [f'\nsha256 = "{p}"' if p else "" for p in (adapter_pin, encoder_pin)]
    path = tmp / "registry.toml"
    path.write_text(
        'default = "tiny"\n'
        '[models.tiny]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'
        f'[models.ipa]\nkind = "ip_adapter"\nfamily = "sd15"\nsource = "hub:org/ipa"\n'
        f'weight = "{ADAPTER}"\nencoder = "enc"{pins[0]}\n'
        f'[models.enc]\nkind = "image_encoder"\nfamily = "sd15"\nsource = "hub:org/ipa"\n'
        f'weight = "{ENCODER}"{pins[1]}\n',
        encoding="utf-8",
    )
    return path


def engine_hash(tmp: Path, reg: Path, name: str) -> str:
    """engine/hashing.py's hash of ``name`` in a fresh process reading this test's cache."""
    code = (
        "import sys; from pathlib import Path; from sfumato.registry import Registry;"
        "from sfumato.engine.hashing import WeightHashes;"
        "print(WeightHashes(Path(sys.argv[1])).of(Registry.load(Path(sys.argv[2])).get(sys.argv[3])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "engine-cache"), str(reg), name],
        env={**hub_env(tmp, None), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_adapter_then_encoder_of_one_repo_fetch_only_their_paths_and_both_stay_present(
    tmp_path: Path, hub: FakeHub
) -> None:
    files = shared_repo()
    hub.put("org/ipa", files)
    adapter_pin = hashlib.sha256(files[ADAPTER]).hexdigest()  # a file entry: its own sha256
    encoder_pin = manifest({"model.safetensors": files[f"{ENCODER}/model.safetensors"]})
    reg = adapter_registry(tmp_path, adapter_pin, encoder_pin)

    first = run(tmp_path, hub, "pull", "ipa", "--registry", str(reg))
    assert first.returncode == 0, first.stderr
    assert f"sha256 {adapter_pin}" in first.stdout
    state = listing(tmp_path, reg)
    assert state["ipa"]["present"] and state["ipa"]["size"] == len(files[ADAPTER])
    assert str(state["ipa"]["where"]).endswith(ADAPTER)
    assert not state["enc"]["present"], "the adapter's file is not the encoder's folder"
    assert engine_hash(tmp_path, reg, "enc") == ""

    second = run(tmp_path, hub, "pull", "enc", "--registry", str(reg))
    assert second.returncode == 0, second.stderr
    assert f"sha256 {encoder_pin}" in second.stdout
    state = listing(tmp_path, reg)
    assert state["ipa"]["present"] and state["enc"]["present"]
    snap = Path(str(state["enc"]["where"])).parent.parent
    assert (snap / ADAPTER).read_bytes() == files[ADAPTER], "the encoder pull dropped the adapter"
    assert (snap / ENCODER / "model.safetensors").read_bytes() == files[
        f"{ENCODER}/model.safetensors"
    ]
    assert state["enc"]["size"] == len(files[f"{ENCODER}/model.safetensors"]) + len(
        files[f"{ENCODER}/config.json"]
    )

    wanted = {ADAPTER, f"{ENCODER}/config.json", f"{ENCODER}/model.safetensors"}
    fetched = {key.split("/", 2)[2] for key in hub.sent}
    assert fetched == wanted, f"only the entries' weight paths may cross, got {sorted(fetched)}"
    assert all(hub.sent[f"org/ipa/{p}"] == len(files[p]) for p in wanted), "each sent once"
    for path in set(files) - wanted:
        assert not hub.downloads(path), f"{path} belongs to no pulled entry and was requested"

    # the engine's hash (what it checks before weights make an image) is the pin pull checked
    assert engine_hash(tmp_path, reg, "ipa") == adapter_pin
    assert engine_hash(tmp_path, reg, "enc") == encoder_pin

    again = run(tmp_path, hub, "pull", "ipa", "--registry", str(reg))
    assert again.returncode == 0 and "ipa: already here" in again.stdout, again.stderr


def test_a_wrong_pin_on_a_weight_entry_fails_with_the_pin_mismatch_and_keeps_the_other_entry(
    tmp_path: Path, hub: FakeHub
) -> None:
    files = shared_repo()
    hub.put("org/ipa", files)
    wrong = hashlib.sha256(b"not these weights").hexdigest()
    reg = adapter_registry(tmp_path, hashlib.sha256(files[ADAPTER]).hexdigest(), wrong)
    assert run(tmp_path, hub, "pull", "ipa", "--registry", str(reg)).returncode == 0

    proc = run(tmp_path, hub, "pull", "enc", "--registry", str(reg))
    assert proc.returncode == 1
    got = manifest({"model.safetensors": files[f"{ENCODER}/model.safetensors"]})
    assert (
        f"the weights of 'enc' from org/ipa ({ENCODER}) @ {hub.commit('org/ipa')[:12]} hash to "
        f"{got}, but the registry pins {wrong}" in proc.stderr
    ), proc.stderr
    assert "kept" in proc.stderr and "re-approved" in proc.stderr
    state = listing(tmp_path, reg)
    assert state["ipa"]["present"] and not state["enc"]["present"]
    assert not list(tmp_path.rglob(".sfumato-pull/*/*")) and not list(tmp_path.rglob("*.part"))

    # the PinMismatch type itself, from the library call the CLI makes (in a fresh process:
    # this one's huggingface_hub read HF_HUB_OFFLINE=1 when it was imported)
    code = (
        "import sys; from pathlib import Path; from sfumato.registry import Registry;"
        "from sfumato.registry.pull import PinMismatch, pull\n"
        "try: pull(Registry.load(Path(sys.argv[1])).get('enc'), say=lambda _l: None)\n"
        "except PinMismatch as exc: print('PinMismatch', exc)"
    )
    caught = subprocess.run(
        [sys.executable, "-c", code, str(reg)], env=hub_env(tmp_path, hub),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert caught.returncode == 0, caught.stderr
    assert caught.stdout.startswith("PinMismatch ") and wrong in caught.stdout, caught.stdout
    assert got in caught.stdout
