"""sfumato.protocol runs inside Blender and Krita: stdlib and msgpack only, numpy lazily."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# What must never come in with the protocol: ML, host APIs, I/O frameworks. (threading and
# friends are left out on purpose: some stdlib modules import them on some Pythons.)
FORBIDDEN = {
    "torch", "numpy", "diffusers", "transformers", "PIL", "websockets", "asyncio", "socket",
    "ssl", "selectors", "bpy", "krita", "PyQt5", "PyQt6", "sfumato.service", "sfumato.engine",
    "sfumato.client",
}  # fmt: skip


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_pulls_in_nothing_forbidden() -> None:
    modules = set(json.loads(run("""
        import json, sys
        import sfumato.protocol
        print(json.dumps(sorted(sys.modules)))
    """)))  # fmt: skip
    assert {"sfumato.protocol", "sfumato.protocol.session", "msgpack"} <= modules
    loaded = {m for m in modules if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not loaded


def test_works_without_numpy() -> None:
    """Encode and decode a job with arrays while numpy cannot be imported at all."""
    out = run("""
        import sys
        sys.modules["numpy"] = None  # makes `import numpy` raise ImportError
        from sfumato.protocol import (
            Array, DType, Hello, Job, ServerSession, Task, Limits, encode_bytes,
        )
        job = Job("j1", Task.INPAINT, image=Array(DType.UINT8, (2, 2, 3), bytes(12)),
                  mask=Array(DType.UINT8, (2, 2, 1), b"\\xff" * 4))
        session = ServerSession(Limits())
        session.receive(encode_bytes(Hello("krita")))
        assert session.receive(encode_bytes(job)) == job
        try:
            job.image.to_numpy()
        except ImportError:
            print("numpy only when asked")
    """)
    assert out.strip() == "numpy only when asked"
