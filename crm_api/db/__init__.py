"""Storage: SQLAlchemy 2 models (one module per aggregate), the session and migrations."""

from crm_api.db import audit, calls, clients, communications, directories, users, views  # noqa: F401
from crm_api.db.base import Base

__all__ = ["Base"]
