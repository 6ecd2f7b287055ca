"""`sde demo` commands (to be written)."""
