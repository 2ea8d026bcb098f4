"""Alembic migrations, applied automatically on start."""
