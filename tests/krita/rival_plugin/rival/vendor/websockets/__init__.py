"""A stand-in for another plugin's vendored websockets (not the real one)."""

MARKER = "rival-websockets"
__version__ = "0.0-rival"
