"""`sde project` commands (to be written)."""
