"""Storage: SQLAlchemy 2 models (one module per aggregate), the session and migrations."""

from crm_api.db import (  # noqa: F401
    audit,
    calls,
    clients,
    communications,
    directories,
    outbox,
    sales,
    users,
    views,
)
from crm_api.db.base import Base

__all__ = ["Base"]
