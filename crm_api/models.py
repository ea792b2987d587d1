"""Every feature's ORM models on one metadata, for Alembic and the drift test."""

import crm_api.accounts.audit_models
import crm_api.accounts.models
import crm_api.calls.models
import crm_api.clients.directories.models
import crm_api.clients.list_models
import crm_api.clients.models
import crm_api.clients.timeline.models
import crm_api.messages.models
import crm_api.sales.models
import crm_api.schedules.models
import crm_api.tasks.models  # noqa: F401
from crm_api.platform.db.base import Base

__all__ = ["Base"]
