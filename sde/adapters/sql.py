"""SQL control plane (placeholder until the SQLAlchemy models land)."""


def upgrade(url: str) -> None:
    """Bring the control database at ``url`` to the newest schema."""
