"""Researcher workspaces on JupyterHub (issue 7).

- :mod:`sde.hub.auth`: :class:`~sde.hub.auth.SdeAuthenticator`, sign-in with a person id
  and a one-time token from ``sde web link`` / ``sde serve --link``.
- :mod:`sde.hub.spawner`: :class:`~sde.hub.spawner.SdeSpawner` (project choice, the
  ``SDE_*`` environment) and :func:`~sde.hub.spawner.pre_spawn_hook` (the policy check).
- :mod:`sde.hub.config`: :func:`~sde.hub.config.hub_config`, the hub's settings for a home.

These modules import JupyterHub; nothing else in the package does.
"""
