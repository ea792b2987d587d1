"""The database: declarative base and column types, engine and sessions, Alembic migrations."""
