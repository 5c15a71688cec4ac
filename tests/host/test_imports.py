"""The host session is what both plugins import: no asyncio, no torch, no numpy (Debian's
Krita has none), no host API. Checked in a fresh interpreter, where nothing else imported
them first."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("asyncio", "torch", "numpy", "bpy", "krita", "PyQt5", "PyQt6")


def test_the_host_session_imports_nothing_a_host_lacks() -> None:
    code = (
        "import sys, sfumato.hostsession, sfumato.hostlink, sfumato.hostmultiview\n"
        "import sfumato.hostserver, sfumato.hostlaunch, sfumato.hostlive, sfumato.hostdirection\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the host session imported {done.stdout.strip()}"
