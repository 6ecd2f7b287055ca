"""`sde release` commands (to be written)."""
