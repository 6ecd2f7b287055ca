"""`sde audit` commands (to be written)."""
