"""``sfumato demo``: start a server on the built-in tiny model, generate through the real
client, and say where the image went. The host-app demos extend this."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ..client import Client, make_job
from ..imageio import write_png


def start_server(
    results: Path, *extra: str, timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str]:
    """Run ``sfumato serve --port 0`` and return it with its URL once it listens."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sfumato.cli",
            "serve",
            "--port",
            "0",
            "--results",
            str(results),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith("Sfumato listening on "):
            return proc, line.split()[-1]
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"the server did not start (exit code {proc.wait()}); see its log above")


def run_demo(out: Path, blender_python: Path | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    print("starting sfumato serve on the built-in tiny model …", flush=True)
    proc, url = start_server(out / "results")
    try:
        with Client(url, name="sfumato-demo") as client:
            assert client.welcome is not None
            if client.welcome.notice:
                print(client.welcome.notice)
            started = time.monotonic()
            job = make_job(
                "generate",
                prompt="a lighthouse at dusk, oil painting",
                width=512,
                height=512,
                steps=4,
                seed=7,
            )
            result = client.run(job, timeout=600)
        path = write_png(out / "demo.png", result.images[0].to_numpy())
        print(
            f"generated {result.images[0].width}×{result.images[0].height} with {result.model} "
            f"(seed {result.seeds[0]}) in {time.monotonic() - started:.1f} s"
        )
        print(f"wrote {path.resolve()}")
        if blender_python is not None:
            _blender_demo(blender_python, url, out / "blender")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


def _blender_demo(python: Path, url: str, out: Path) -> None:
    """Blender, headless, through the add-on: texture a scene from the camera and render it."""
    script = Path(__file__).resolve().parents[3] / "examples" / "blender_demo.py"
    if not (python.exists() and script.exists()):
        print(f"skipping the Blender demo: {python if not python.exists() else script} is missing")
        return
    print("texturing a Blender scene from its camera (headless bpy) …", flush=True)
    subprocess.run([str(python), str(script), "--url", url, "--out", str(out)], check=True)
