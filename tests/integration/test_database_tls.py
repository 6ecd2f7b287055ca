"""The control database over TLS with the server's certificate checked (``verify-full``),
as the chart sets it up with ``database.caCertificate``: a real PostgreSQL listening on
127.0.0.1 with a certificate signed by a throwaway CA.

The pods' home is assembled by the chart's own init script (``prepare_home.py``), which
adds ``sslrootcert`` to the URL; the migration Job gives the CA to libpq as
``PGSSLROOTCERT``. Both are checked to connect, to really use TLS, and to refuse a server
whose certificate another CA signed or whose name does not match.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sde.adapters.sql import make_engine, open_control_plane, upgrade
from sde.services.home import open_home
from tests.browser import free_port
from tests.postgres import PostgresUnavailable, Server, Tls, start_server

pytestmark = pytest.mark.sql

REPO = Path(__file__).resolve().parents[2]
PREPARE_HOME = REPO / "helm" / "sde" / "files" / "prepare_home.py"
PASSWORD = "pw-not-in-any-message"  # trust auth: sent, not checked; never shown


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    certificate: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(folder: Path, common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{common}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_path = _ca(folder, "sde-test-database-ca")
    _, _, other_path = _ca(folder, "another-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(ca_path, other_path, folder / "server.crt", folder / "server.key")


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[tuple[Server, int]]:
    port = free_port()
    try:
        running = start_server(Tls(pki.certificate, pki.key, port))
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield running, port
    finally:
        running.stop()


def tcp_url(port: int, sslmode: str, host: str = "127.0.0.1") -> str:
    return f"postgresql+psycopg://sde:{PASSWORD}@{host}:{port}/postgres?sslmode={sslmode}"


def prepare_home(tmp_path: Path, database_url: str, ca: Path) -> subprocess.CompletedProcess[str]:
    """The chart's init script, as the pod runs it with database.caCertificate set."""
    (tmp_path / "config.yaml").write_text("{}\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SDE_HOME": str(tmp_path / "home"),
        "SDE_CONFIG_TEMPLATE": str(tmp_path / "config.yaml"),
        "SDE_DATA": str(tmp_path / "data"),
        "SDE_MASTER_KEY": "ab" * 32,
        "SDE_DATABASE_URL": database_url,
        "SDE_DATABASE_CA": str(ca),
    }
    return subprocess.run(
        [sys.executable, str(PREPARE_HOME)], env=env, capture_output=True, text=True, timeout=60
    )


def uses_tls(url: str) -> bool:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_pods_home_reaches_the_database_checking_its_certificate(
    server: tuple[Server, int], pki: Pki, tmp_path: Path
) -> None:
    _, port = server
    result = prepare_home(tmp_path, tcp_url(port, "verify-full"), pki.ca)
    assert result.returncode == 0, result.stderr
    home = open_home(tmp_path / "home")
    assert sa.engine.make_url(home.database_url).query["sslrootcert"] == str(pki.ca)
    upgrade(home.database_url)
    with open_control_plane(home.database_url) as plane:
        plane.audit.record("ops", "home.created", "home:tls", {"lake": "local"})
        assert [e.action for e in plane.audit.events()][-1] == "home.created"
    assert uses_tls(home.database_url)


@pytest.mark.parametrize(
    ("sslmode", "host", "ca_of", "said"),
    [
        ("verify-full", "127.0.0.1", "other", "certificate verify failed"),
        ("verify-full", "localhost", "ours", "does not match host name"),
    ],
)
def test_a_server_the_ca_did_not_sign_or_of_another_name_is_refused(
    server: tuple[Server, int],
    pki: Pki,
    tmp_path: Path,
    sslmode: str,
    host: str,
    ca_of: str,
    said: str,
) -> None:
    _, port = server
    ca = pki.other_ca if ca_of == "other" else pki.ca
    result = prepare_home(tmp_path, tcp_url(port, sslmode, host), ca)
    assert result.returncode == 0, result.stderr  # the home is assembled; connecting fails
    url = open_home(tmp_path / "home").database_url
    with pytest.raises(sa.exc.OperationalError, match=said):
        uses_tls(url)


def test_without_the_ca_verify_full_cannot_connect(
    server: tuple[Server, int], tmp_path: Path
) -> None:
    """The control: the same URL with no root certificate anywhere fails, so the tests
    above pass because of the CA the chart mounts."""
    _, port = server
    env = {**os.environ, "PGSSLROOTCERT": str(tmp_path / "absent.crt")}
    script = (
        "import sys; from tests.integration.test_database_tls import uses_tls; "
        "uses_tls(sys.argv[1])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, tcp_url(port, "verify-full")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "root certificate file" in result.stderr


@pytest.mark.parametrize(("ca_of", "exit_code"), [("ours", 0), ("other", 2)])
def test_the_migration_job_checks_the_certificate_through_pgsslrootcert(
    server: tuple[Server, int], pki: Pki, ca_of: str, exit_code: int
) -> None:
    _, port = server
    env = {
        **os.environ,
        "SDE_DATABASE_URL": tcp_url(port, "verify-full"),
        "PGSSLROOTCERT": str(pki.ca if ca_of == "ours" else pki.other_ca),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sde"),
            "db",
            "upgrade",
            "--database-url-env",
            "SDE_DATABASE_URL",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == exit_code, result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "ca", "said"),
    [
        ("postgresql+psycopg://sde:pw@db/sde?sslmode=require", "ca", "sslmode=verify-full"),
        ("postgresql+psycopg://sde:pw@db/sde", "ca", "sslmode=verify-full"),
        (
            "postgresql+psycopg://sde:pw@db/sde?sslmode=verify-full&sslrootcert=/x.crt",
            "ca",
            "keep one",
        ),
        ("postgresql+psycopg://sde:pw@db/sde?sslmode=verify-full", "missing", "cannot be read"),
        ("postgresql+psycopg://sde:pw@db/sde?sslmode=verify-full", "not-pem", "no PEM"),
    ],
)
def test_the_init_script_refuses_a_ca_it_cannot_use(
    pki: Pki, tmp_path: Path, url: str, ca: str, said: str
) -> None:
    (tmp_path / "not.pem").write_text("hello\n")
    path = {"ca": pki.ca, "missing": tmp_path / "absent.crt", "not-pem": tmp_path / "not.pem"}
    result = prepare_home(tmp_path, url, path[ca])
    assert result.returncode != 0
    assert said in result.stderr
    assert ":pw@" not in result.stderr + result.stdout
    assert not (tmp_path / "home" / ".sde-home").exists()
