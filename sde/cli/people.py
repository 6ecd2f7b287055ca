"""Options shared by commands that act as a person."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def default_actor() -> str:
    return os.environ.get("SDE_USER") or getpass.getuser()


def actor_option(func: F) -> F:
    """``--by PERSON``: who is acting (default ``$SDE_USER``, else the login name)."""
    return click.option(
        "--actor",
        "actor",
        default=default_actor,
        show_default="$SDE_USER or login name",
        help="The person acting.",
    )(func)
