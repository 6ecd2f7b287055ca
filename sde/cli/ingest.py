"""`sde ingest` commands (to be written)."""
