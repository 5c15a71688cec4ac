"""Who signs: a certificate chain and its private key, from the config or — for development —
a local CA and leaf made on first run.

C2PA validators refuse a self-signed leaf, so the development identity is two certificates:
a CA (kept only to issue the leaf) and an ES256 leaf whose key is stored as PKCS#8. Such
credentials validate structurally but are *untrusted*: no validator knows this CA.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from ..protocol import SfumatoError

DEV_ORG = "Sfumato local development (untrusted)"


class SigningSetupError(SfumatoError, ValueError):
    pass


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes  # leaf first, then the issuing CA
    key_pem: bytes  # PKCS#8
    algorithm: str = "es256"
    development: bool = False  # True: generated locally, untrusted by any validator


def load_identity(cert: Path | None, key: Path | None, dev_folder: Path) -> SigningIdentity:
    """The configured identity, or the development one (created on first use)."""
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise SigningSetupError(
                "signing needs both [server] signing_cert and signing_key (PEM files); "
                "set both, or neither to use a local development identity"
            )
        try:
            return SigningIdentity(cert.read_bytes(), key.read_bytes())
        except OSError as exc:
            raise SigningSetupError(f"cannot read the signing certificate or key: {exc}") from None
    return development_identity(dev_folder)


def development_identity(folder: Path) -> SigningIdentity:
    chain, key = folder / "dev-chain.pem", folder / "dev-key.pem"
    if not (chain.is_file() and key.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        chain_pem, key_pem = _make_development_chain()
        key.write_bytes(key_pem)
        key.chmod(0o600)
        chain.write_bytes(chain_pem)
    return SigningIdentity(chain.read_bytes(), key.read_bytes(), development=True)


def _make_development_chain() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORG),
            ]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Sfumato development CA"))
        .issuer_name(name("Sfumato development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Sfumato development signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key
