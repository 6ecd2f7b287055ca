"""Options shared by commands that act as a person."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def default_actor() -> str:
    """``$SDE_USER`` (set in a workspace), else the login name."""
    if os.environ.get("SDE_USER"):
        return os.environ["SDE_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def actor_option(func: F) -> F:
    """``--actor NAME``: who is acting, recorded in the audit log."""
    return click.option(
        "--actor",
        default=default_actor,
        show_default=False,
        metavar="NAME",
        help="Who is acting, for the audit log (default: $SDE_USER, else your login name).",
    )(func)
