"""The output checkers' and researchers' web page (FastAPI, server-rendered, no scripts).

``create_app(home)`` builds the app; ``sde web serve`` runs it and ``sde web link`` makes a
one-time sign-in link. See docs/web.md.
"""

from __future__ import annotations

from sde.web.app import create_app

__all__ = ["create_app"]
