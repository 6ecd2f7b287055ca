"""`sde synth` commands (to be written)."""
