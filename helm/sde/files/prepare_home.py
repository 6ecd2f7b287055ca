"""Assemble an sde home for one pod (the chart's init container; runs in the sde image).

A home is a directory with ``.sde-home``, ``config.yaml``, ``keys/master.key`` (0600) and
the lake. In the cluster its parts come from three places, put together here in a
folder (``$SDE_HOME``) this script creates, 0700, inside an in-memory ``emptyDir`` (whose
own root belongs to root, so it cannot be made private itself):

- ``config.yaml``: the chart's ConfigMap (``$SDE_CONFIG_TEMPLATE``, no secrets) plus
  ``database_url`` from the existing Secret (``$SDE_DATABASE_URL``); with
  ``database.caCertificate`` set, the URL gets ``sslrootcert=`` naming the mounted CA
  certificate (``$SDE_DATABASE_CA``), and must ask for ``sslmode=verify-full`` (or
  ``verify-ca``): a CA given means the server's certificate is to be checked;
- ``keys/master.key``: the 32 bytes of ``$SDE_MASTER_KEY`` (64 hex characters, from the
  existing Secret), written 0600 by this user. (A Secret volume cannot give this: its
  files belong to root, and group-readable ones fail sde's 0600 check.)
- ``lake`` and ``sources``: links into the lake's volume (``$SDE_DATA``), whose zone
  folders are created when missing. With the lake on object storage (``lake:`` in the
  config) the volume holds only the working folders (``projects`` for outputs, ``egress``)
  and no table zone is made on it; the store's credentials are not needed here (the
  pod's own container gets them as ``SDE_LAKE_*`` variables).

The result is opened with sde's own ``open_home`` and its key read once, so a pod whose
home would not work never starts. Messages name files and variables, never a value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sqlalchemy as sa
import yaml

from sde.services.home import CONFIG_FILE, KEY_FILE, MARKER, open_home, parse_key_override

ZONES = ("linked", "projects", "quarantine", "egress", "manifests")
WORKING = ("projects", "egress")


def _private(path: Path, content: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value.strip():
        raise SystemExit(f"prepare-home: {name} is not set (check the chart's existing Secret)")
    return value


VERIFYING = ("verify-full", "verify-ca")


def with_root_certificate(database_url: str, ca_file: Path) -> str:
    """``database_url`` with ``sslrootcert`` naming ``ca_file`` (a PEM certificate)."""
    try:
        pem = ca_file.read_text(encoding="ascii", errors="replace")
    except OSError:
        raise SystemExit(f"prepare-home: SDE_DATABASE_CA: {ca_file} cannot be read") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise SystemExit(f"prepare-home: SDE_DATABASE_CA: {ca_file} holds no PEM certificate")
    try:
        url = sa.engine.make_url(database_url)
    except sa.exc.ArgumentError:
        raise SystemExit("prepare-home: SDE_DATABASE_URL is not a database URL") from None
    if "sslrootcert" in url.query:
        raise SystemExit(
            "prepare-home: SDE_DATABASE_URL names sslrootcert and database.caCertificate is "
            "set: keep one"
        )
    if url.query.get("sslmode") not in VERIFYING:
        raise SystemExit(
            "prepare-home: database.caCertificate is set, so SDE_DATABASE_URL must ask for "
            "sslmode=verify-full (or verify-ca) to check the server's certificate"
        )
    return url.update_query_dict({"sslrootcert": str(ca_file)}).render_as_string(
        hide_password=False
    )


def prepare(environ: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if environ is None else environ)
    root = Path(_required(env, "SDE_HOME"))
    template = Path(_required(env, "SDE_CONFIG_TEMPLATE"))
    data = Path(_required(env, "SDE_DATA"))
    key = parse_key_override(_required(env, "SDE_MASTER_KEY"))
    database_url = _required(env, "SDE_DATABASE_URL").strip()
    if database_url.startswith("sqlite"):
        raise SystemExit("prepare-home: SDE_DATABASE_URL must name a server database, not SQLite")
    ca = env.get("SDE_DATABASE_CA", "").strip()
    if ca:
        database_url = with_root_certificate(database_url, Path(ca))

    settings = yaml.safe_load(template.read_text()) or {}
    if not isinstance(settings, dict):
        raise SystemExit(f"prepare-home: {template} is not a mapping of settings")
    if "database_url" in settings:
        raise SystemExit(f"prepare-home: {template} must not hold database_url (a secret)")
    settings["database_url"] = database_url

    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    (root / "keys").mkdir(mode=0o700, exist_ok=True)
    _private(root / KEY_FILE, key)
    _private(root / CONFIG_FILE, yaml.safe_dump(settings, sort_keys=True).encode())
    lake = data / "lake"
    remote = isinstance(settings.get("lake"), dict) and bool(settings["lake"].get("url"))
    for zone in WORKING if remote else ZONES:
        (lake / zone).mkdir(parents=True, exist_ok=True)
    (data / "sources").mkdir(parents=True, exist_ok=True)
    for name, target in (("lake", lake), ("sources", data / "sources")):
        link = root / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    (root / MARKER).write_text("sde home v1\n")

    home = open_home(root)  # the settings parse, or this pod does not start
    home.master_key()  # 32 bytes, 0600
    return root


if __name__ == "__main__":
    try:
        print(f"prepare-home: sde home ready at {prepare()}")
    except Exception as exc:
        print(f"prepare-home: failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
