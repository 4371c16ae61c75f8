"""Certificates for a secured Kafka: a private CA, a broker certificate and client
certificates (mutual TLS), as PEM files.

Made for tests and local trials (`include.runtime.kafka.SecuredKafka`); a production
cluster brings certificates from its own CA.  Keys are written with mode 0600.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class BrokerTls:
    """A broker's TLS files, and the principal Kafka names it by."""

    ca_file: Path  # the CA certificate clients trust (PEM)
    keystore_file: Path  # the broker's private key (PKCS#8) followed by its certificate chain
    principal: str  # the broker certificate's subject, as Kafka names it ("CN=...")
    # Client name -> (certificate, private key) for mutual TLS; subject "CN=<name>".
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def make_broker_tls(
    directory: Path,
    hosts: list[str],
    days: int = 30,
    clients: dict[str, str] | None = None,
) -> BrokerTls:
    """A new CA and a broker certificate for `hosts` (IP addresses or DNS names), valid for
    `days`, written as PEM files into `directory`; and for each of `clients` (name -> key
    password, "" for none) a client certificate "CN=<name>" with its key in the
    traditional (SEC1) PEM format that OpenSSL writes, encrypted when given a password."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("ecom-test-ca"))
        .issuer_name(name("ecom-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(name("kafka-broker"))
        .issuer_name(ca_cert.subject)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    keystore = directory / "broker-keystore.pem"
    keystore.touch(mode=0o600)
    keystore.write_bytes(
        broker_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + broker_cert.public_bytes(pem)
        + ca_cert.public_bytes(pem)
    )
    client_files = {}
    for client, password in (clients or {}).items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(client))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .sign(ca_key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{client}.pem", directory / f"{client}-key.pem"
        cert_file.write_bytes(cert.public_bytes(pem))
        key_file.touch(mode=0o600)
        encryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, encryption)
        )
        client_files[client] = (cert_file, key_file)
    return BrokerTls(ca_file, keystore, "CN=kafka-broker", client_files)
