"""HTTPS for the simulators: a local CA, generated once per data directory.

``paystab up --tls`` and ``paystab provider --tls`` serve every provider over HTTPS with a
certificate for ``localhost``, ``127.0.0.1`` and ``::1`` issued by a CA made on first use
(``<data dir>/tls/ca.pem``; its key never leaves that directory, mode 0600). The ready file
names the CA as ``ca_file``: a shop's service trusts it the way it would trust a PSP's
public chain (the stripe SDK: ``stripe.ca_bundle_path``; requests: ``verify=``; Node:
``NODE_EXTRA_CA_CERTS``), and the reference gateway trusts it per provider
(:func:`client_context`). Keys are EC P-256; the CA lives 10 years, the leaf 1 year, and a
leaf within 30 days of expiry is renewed on start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from paystab.exceptions import EnvironmentProblem

_HOSTS = ("localhost",)
_ADDRESSES = ("127.0.0.1", "::1")
_RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # PEM certificate of the local CA: what clients trust
    cert_file: Path  # the simulators' certificate (PEM)
    key_file: Path  # its private key (PEM, 0600)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paystab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("paystab local CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(directory / "ca-key.pem", _key_pem(key), private=True)
    _write(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise EnvironmentProblem(f"{directory / 'ca-key.pem'} is not an EC key",
                                 hint="delete the tls directory to make a new CA")
    return cert, key


def _make_leaf(directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
               ) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in _HOSTS]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _ADDRESSES]
    cert = (x509.CertificateBuilder().subject_name(_name("localhost"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(directory / "server-key.pem", _key_pem(key), private=True)
    _write(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(data_dir: Path) -> TlsFiles:
    """The CA and server certificate under ``data_dir/tls``, made or renewed as needed."""
    directory = Path(data_dir) / "tls"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (directory / "ca.pem").is_file() and (directory / "ca-key.pem").is_file():
            ca, ca_key = _load_ca(directory)
        else:
            ca, ca_key = _make_ca(directory)
        leaf_path = directory / "server.pem"
        renew = True
        if leaf_path.is_file() and (directory / "server-key.pem").is_file():
            leaf = x509.load_pem_x509_certificate(leaf_path.read_bytes())
            renew = (leaf.issuer != ca.subject
                     or leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) < _RENEW_BEFORE)
        if renew:
            _make_leaf(directory, ca, ca_key)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write TLS files in {directory}: {exc.strerror}",
                                 hint="pick a writable --data-dir") from None
    return TlsFiles(directory / "ca.pem", leaf_path, directory / "server-key.pem")


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    return context


@lru_cache(maxsize=16)
def client_context(ca_file: str) -> ssl.SSLContext:
    """A client context that trusts the system roots and the CA in ``ca_file``."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise EnvironmentProblem(f"cannot load the CA file {ca_file}: {exc}",
                                 hint="check the ready file's ca_file") from None
    return context
