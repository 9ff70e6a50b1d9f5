"""Trust on first use: the pin store itself, then the whole decision over real TLS to a real server."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatcore_client.api import ChatClient
from chatcore_client.connection import DowngradeRefused
from chatcore_client.pinning import CertificateChanged, CertificateRejected, Verdict, config_dir, fingerprint

FP_A = fingerprint(b"certificate a")
FP_B = fingerprint(b"certificate b")


class Asker:
    """Records each first-contact question and answers it with ``answer``."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[tuple[str, int, str]] = []

    def __call__(self, host: str, port: int, presented: str) -> bool:
        self.asked.append((host, port, presented))
        return self.answer


# -- the store -----------------------------------------------------------------------------


def test_fingerprint_is_colon_separated_sha256():
    assert len(FP_A.split(":")) == 32 and FP_A == FP_A.upper()


def test_config_dir_follows_xdg(tmp_path):
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "chatcore"
    assert config_dir({}).parts[-2:] == (".config", "chatcore")


def test_first_use_asks_then_same_is_silent(pins):
    ask = Asker(True)
    pins.trust("chat.example", 8888, FP_A, ask)
    assert ask.asked == [("chat.example", 8888, FP_A)]
    pins.trust("chat.example", 8888, FP_A, ask)
    assert len(ask.asked) == 1 and pins.check("chat.example", 8888, FP_A) is Verdict.MATCH
    assert stat.S_IMODE(pins.path.stat().st_mode) == 0o600
    assert json.loads(pins.path.read_text())["chat.example:8888"]["sha256"] == FP_A


def test_declined_first_use_is_not_remembered(pins):
    with pytest.raises(CertificateRejected):
        pins.trust("chat.example", 8888, FP_A, Asker(False))
    assert pins.check("chat.example", 8888, FP_A) is Verdict.NEW


def test_changed_certificate_is_refused_with_an_ssh_like_warning(pins):
    pins.remember("chat.example", 8888, FP_A)
    ask = Asker(True)
    with pytest.raises(CertificateChanged) as refused:
        pins.trust("chat.example", 8888, FP_B, ask)
    text = str(refused.value)
    assert "HAS CHANGED" in text and FP_A in text and FP_B in text and str(pins.path) in text
    assert ask.asked == []  # never offered to the user as a simple yes/no
    assert pins.get("chat.example", 8888) == FP_A


def test_pins_are_per_host_and_port_and_can_be_forgotten(pins):
    pins.remember("::1", 8888, FP_A)
    assert pins.check("::1", 8889, FP_A) is Verdict.NEW
    assert "[::1]:8888" in json.loads(pins.path.read_text())
    pins.forget("::1", 8888)
    assert pins.get("::1", 8888) is None


# -- over real TLS -------------------------------------------------------------------------


def test_tls_first_contact_asks_and_pins_the_servers_fingerprint(make_server, pins):
    server = make_server(plugins=["auth"])
    ask = Asker(True)
    host, port = server.address
    with ChatClient.connect(host, port, pins=pins, ask=ask) as client:
        assert client.tls and client.server.raw["tls"] is True
    assert ask.asked == [(host, port, server.tls_fingerprint)]
    assert pins.get(host, port) == server.tls_fingerprint
    with ChatClient.connect(host, port, pins=pins, ask=ask) as again:
        assert again.tls
    assert len(ask.asked) == 1


def test_tls_refused_on_first_contact_when_the_user_says_no(make_server, pins):
    server = make_server(plugins=["auth"])
    with pytest.raises(CertificateRejected):
        ChatClient.connect(*server.address, pins=pins, ask=Asker(False))


def test_tls_changed_certificate_is_refused(make_server, pins):
    server = make_server(plugins=["auth"])
    host, port = server.address
    pins.remember(host, port, FP_A)  # as if the server had another certificate before
    ask = Asker(True)
    with pytest.raises(CertificateChanged, match="HAS CHANGED"):
        ChatClient.connect(host, port, pins=pins, ask=ask)
    assert ask.asked == []


def test_pinned_server_offering_only_plaintext_is_a_refused_downgrade(make_server, pins):
    server = make_server(plugins=["auth"], env={"CHATCORE_TLS": "false"})
    host, port = server.address
    pins.remember(host, port, FP_A)
    with pytest.raises(DowngradeRefused):
        ChatClient.connect(host, port, pins=pins)


def test_require_tls_refuses_a_plaintext_server(make_server, pins):
    server = make_server(plugins=["auth"], env={"CHATCORE_TLS": "false"})
    with pytest.raises(DowngradeRefused, match="requires"):
        ChatClient.connect(*server.address, pins=pins, tls="require")


def _ca_signed_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for 127.0.0.1: (ca, cert, key) PEM paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chatcore test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_ca_verified_certificate_is_accepted_without_asking(make_server, pins, tmp_path):
    ca, cert, key = _ca_signed_certificate(tmp_path)
    server = make_server(plugins=["auth"], env={"CHATCORE_TLS_CERT": str(cert), "CHATCORE_TLS_KEY": str(key)})
    trusted = ssl.create_default_context(cafile=str(ca))
    ask = Asker(False)
    with ChatClient.connect(*server.address, pins=pins, ask=ask, ca_context=trusted) as client:
        assert client.tls and client.connection.ca_verified
    assert ask.asked == [] and pins.get(*server.address) is None
