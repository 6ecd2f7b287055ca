"""`sde extract` commands (to be written)."""
