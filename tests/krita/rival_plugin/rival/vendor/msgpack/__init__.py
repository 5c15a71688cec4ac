"""A stand-in for another plugin's vendored msgpack (not the real one)."""

MARKER = "rival-msgpack"
__version__ = "0.0-rival"
