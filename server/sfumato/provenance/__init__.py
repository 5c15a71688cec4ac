"""Provenance: content credentials (C2PA) on every output, and the identity that signs them.

Server-side only (c2pa-python and cryptography are server extras); never imported by hosts.
"""

from .credentials import (
    ASSERTION,
    CredentialsError,
    GenerationFacts,
    ModelRef,
    Verification,
    sha256_bytes,
    sign_png,
    verify_png,
)
from .identity import SigningIdentity, SigningSetupError, development_identity, load_identity

__all__ = [
    "ASSERTION", "CredentialsError", "GenerationFacts", "ModelRef", "SigningIdentity",
    "SigningSetupError", "Verification", "development_identity", "load_identity",
    "sha256_bytes", "sign_png", "verify_png",
]  # fmt: skip
