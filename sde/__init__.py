"""sde: a Secure Data Environment for linked NHS patient records."""

__version__ = "0.1.0"
