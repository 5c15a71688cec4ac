"""Sfumato: a local diffusion server behind the tools artists already use."""

__version__ = "0.1.0"
