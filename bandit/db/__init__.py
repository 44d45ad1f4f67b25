"""Storage: SQLAlchemy models, engines and migrations."""
