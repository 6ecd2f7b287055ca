"""`sde deid` commands (to be written)."""
