"""Alembic migrations, shipped as a package so `hitl db upgrade` finds them when installed."""
