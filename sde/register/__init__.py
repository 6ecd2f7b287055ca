"""The public register as a static site (``sde register build``).

:func:`sde.services.register.build_register` reads the control plane and the audit log into
plain values; :func:`write_site` writes them as HTML pages with CSV and JSON beside each.
"""

from __future__ import annotations

from sde.register.render import site_files, write_site

__all__ = ["site_files", "write_site"]
