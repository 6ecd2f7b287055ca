"""``sde keys``: the master key's fingerprint, and carrying patients' own choices across a
rotation to a new key (docs/operators/keys.md). No key, NHS number or pid is printed."""

from __future__ import annotations

import os
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.domain.keys import key_fingerprint, parse_key_file
from sde.errors import ConfigError
from sde.services.home import Home, lake_environment, open_home

_KEY_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.group()
def keys() -> None:
    """The master key: its fingerprint, and carrying choices over to a new key."""


def read_key_file(path: Path) -> bytes:
    """A master key from a file (32 raw bytes, or 64 hexadecimal characters), refused if
    anyone but its owner may read it. Messages never hold key material."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"key file {path} is readable by others (mode {mode:o}); it must be 0600")
    try:
        return parse_key_file(path.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"key file {path}: {exc}") from None


@keys.command("fingerprint")
@click.option(
    "--key-file",
    type=_KEY_FILE,
    default=None,
    help="Fingerprint the key in this file (32 raw bytes or 64 hex characters, mode "
    "0600) instead of the home's, e.g. an escrowed copy.",
)
@home_option
def fingerprint_command(key_file: Path | None, home_dir: Path | None) -> None:
    """Print the SHA-256 of the master key, which names it without revealing it.

    The home's key ($SDE_MASTER_KEY, else its key file), or the key in --key-file.
    Record the old and the new key's in the change log of a rotation; compare an
    escrowed copy with the key in use."""
    if key_file is not None:
        key = read_key_file(key_file)
        where = str(key_file)
    else:
        home = load_home(home_dir, check_lake=False)
        key = home.master_key()
        where = f"home {home.root}"
    click.echo(f"master key sha256 {key_fingerprint(key)} ({where})")


def _open_old_home(root: Path, old_key_file: Path | None) -> Home:
    """The old home, with the key of its own key file or of ``old_key_file``; never with
    ``SDE_MASTER_KEY`` (that is the new key's place)."""
    key = read_key_file(old_key_file) if old_key_file is not None else None
    try:
        home = open_home(root, key_override=key)
        if home.lake_is_remote:  # its credentials, like the new lake's, from SDE_LAKE_*
            home = open_home(root, key_override=key, lake_environment=lake_environment(os.environ))
    except ConfigError as exc:
        raise ConfigError(f"the old home (--from-home): {exc}") from None
    if key is None and not home.key_path.exists():
        raise ConfigError(
            f"the old home has no key file at {home.key_path}: give the old key with --old-key-file"
        )
    return home


@keys.command("carry-choices")
@click.option(
    "--from-home",
    "old_home_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The old home (or a restored copy of it), whose lake holds the choices by the old pid.",
)
@click.option(
    "--old-key-file",
    type=_KEY_FILE,
    default=None,
    help="The old master key (32 raw bytes or 64 hex characters, mode 0600); default: "
    "the old home's keys/master.key.",
)
@actor_option
@home_option
def carry_choices_command(
    old_home_dir: Path, old_key_file: Path | None, actor: str, home_dir: Path | None
) -> None:
    """Carry patients' own choices from the old home to this one's new key.

    Choices made on the patient's page or with `sde optout set` in the old home are
    appended to this home's opt_out_choices under the new key's pid. The map from old
    to new pid is made in memory from the NHS numbers of this home's source files
    (<home>/sources/<dataset>.csv) and never written. Choices imported from files are
    not carried: import those files again. A choice whose patient is not in the sources
    cannot be carried: that patient must be asked to choose again. Running it again
    adds nothing new. Recorded in this home's audit log."""
    from sde.services.key_rotation import carry_choices
    from sde.services.wiring import control_plane

    new = load_home(home_dir)
    old = _open_old_home(old_home_dir, old_key_file)
    with control_plane(new) as store:
        result = carry_choices(old, new, actor=actor, audit=store.audit)
    where = "no table" if result.version is None else f"version {result.version}"
    unmatched = (
        f"{result.unmatched:,} unmatched ({result.unmatched_patients:,} "
        f"patient{'' if result.unmatched_patients == 1 else 's'} not in the sources: ask "
        f"{'that patient' if result.unmatched_patients == 1 else 'them'} to choose again)"
        if result.unmatched
        else "0 unmatched"
    )
    click.echo(
        f"choices considered {result.considered:,}: {result.carried:,} carried, "
        f"{result.already_present:,} already present, {unmatched}; "
        f"{result.file_imported:,} imported from files not carried (import the files "
        f"again); sources: {result.patients_in_sources:,} patients in "
        f"{len(result.source_files)} files, {result.rows_without_valid_number:,} rows "
        f"without a valid NHS number; linked/opt_out_choices {where}"
    )
