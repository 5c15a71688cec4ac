"""Test helper (tests/krita/test_gui.py), never shipped: another plugin loaded in the same
Krita that vendors its *own* websockets and msgpack the way krita-ai-diffusion does — its
``vendor/`` first on ``sys.path``, imported by their public names at load time. Its copies
carry a MARKER; the smoke helper checks that both plugins keep their own (issue 10 item 2)."""

import os
import sys

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")
sys.path.insert(0, _VENDOR)

import msgpack  # noqa: E402  (theirs: the fake with the marker)
import websockets  # noqa: E402

LOADED = {"msgpack": msgpack.MARKER, "websockets": websockets.MARKER}
