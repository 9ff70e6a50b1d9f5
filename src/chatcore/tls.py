"""The server's TLS certificate and context: made on first start, or the operator's own.

A self-signed ECDSA P-256 certificate (faster handshakes than RSA-2048) is written to
``<data>/tls/`` with the key readable by the owner only. Clients pin its fingerprint.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
VALID_DAYS = 3650


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER form, as colon-separated upper-case hex (what clients pin)."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start, so the key is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def create_self_signed(directory: Path) -> tuple[Path, Path]:
    """Generate a key and a self-signed certificate for this host in ``directory``."""
    # cryptography (~15 MiB of RSS) is needed only the first time, to make the certificate
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "localhost"
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if host != "localhost":
        names.insert(0, x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"chatcore on {host}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / KEY_NAME, directory / CERT_NAME
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def certificate_paths(directory: Path, cert: str, key: str) -> tuple[Path, Path]:
    """The operator's certificate and key if configured, else ours, made on first use."""
    if cert or key:
        if not (cert and key):
            raise ValueError("set both CHATCORE_TLS_CERT and CHATCORE_TLS_KEY, or neither")
        return Path(cert), Path(key)
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if not (cert_path.is_file() and key_path.is_file()):
        cert_path, key_path = create_self_signed(directory)
        log.info("created a self-signed TLS certificate in %s", directory)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context that speaks TLS 1.2 and later only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
