"""Whether a setting's or variable's name says it holds a credential (pure).

One rule for every place that must keep credentials out of a file or a manifest: the
``lake:`` section of ``config.yaml`` (credentials come only from ``SDE_LAKE_*``
variables), a workspace pod's literal environment and the store options written into it
(credentials reach a pod by ``secretKeyRef`` only). A name is suspect when it has a word
that credentials are named with: ``KEY`` as a word or at the end (``AWS_ACCESS_KEY_ID``,
``AZURE_STORAGE_ACCOUNT_KEY``, ``API_KEY``), ``SECRET``, ``PASSWORD``/``PASSWD``,
``TOKEN``, ``CREDENTIAL``, ``PRIVATE``, ``SAS``. Erring towards suspicion is the point:
a wrongly suspected name is refused with a message saying why, a missed one leaks.
"""

from __future__ import annotations

import re
from typing import Final

CREDENTIAL_NAME: Final = re.compile(
    r"(^|_)KEY($|_)|KEY$|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|(^|_)SAS($|_)",
    re.IGNORECASE,
)


def looks_like_credential(name: str) -> bool:
    """True when ``name`` (any case) reads like the name of a credential."""
    return CREDENTIAL_NAME.search(name) is not None
