"""HTTPS for local use: a self-signed certificate for 127.0.0.1/localhost, generated once into state_dir."""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptolake.errors import ConfigError
from cryptolake.settings import Settings


def self_signed(directory: Path, now: datetime, days: int = 365) -> tuple[Path, Path]:
    """``(cert, key)`` PEM files for localhost and 127.0.0.1, created if missing (key mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cryptolake local")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def tls_files(settings: Settings) -> tuple[Path, Path]:
    """The configured certificate and key, or the local self-signed pair."""
    api = settings.api
    if bool(api.tls_cert) != bool(api.tls_key):
        raise ConfigError("api.tls_cert and api.tls_key: set both or neither")
    if api.tls_cert:
        cert, key = Path(api.tls_cert), Path(api.tls_key)
        for field, path in (("api.tls_cert", cert), ("api.tls_key", key)):
            if not path.is_file():
                raise ConfigError(f"{field}={str(path)!r}: no such file")
        return cert, key
    return self_signed(settings.paths.state_dir / "api" / "tls", datetime.now(UTC))
