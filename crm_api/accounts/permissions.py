"""The one permission table. Every HTTP route and `/ws` names a permission from here;
row-level scope (whose clients a user works with) is `client_scope` below."""

from __future__ import annotations

import enum

from sqlalchemy import ColumnElement, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import Role, User
from crm_api.clients.models import Client


class Permission(enum.StrEnum):
    SELF = "self"  # own profile, own tokens, own saved views, /ws
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    DIRECTORIES_READ = "directories:read"
    DIRECTORIES_MANAGE = "directories:manage"
    CLIENTS_READ = "clients:read"
    CLIENTS_WRITE = "clients:write"
    CLIENTS_IMPORT = "clients:import"
    CLIENTS_EXPORT = "clients:export"
    NOTES_WRITE = "notes:write"
    AUDIT_READ = "audit:read"
    CALLS_READ = "calls:read"  # live calls and recordings of one's own calls
    CALLS_ORIGINATE = "calls:originate"
    CALLS_REVIEW = "calls:review"  # every call, recordings review and scoring
    MESSAGES_SEND = "messages:send"  # SMS and e-mail from a card
    MESSAGES_BULK = "messages:bulk"  # SMS to a whole view, and its reports
    DEALS_READ = "deals:read"
    DEALS_WRITE = "deals:write"
    TASKS = "tasks"  # own tasks and the ones handed out; staff: everyone's
    SCHEDULES_READ = "schedules:read"
    SCHEDULES_MANAGE = "schedules:manage"
    PLANS_READ = "plans:read"  # managers: their own
    PLANS_MANAGE = "plans:manage"
    REPORTS_READ = "reports:read"  # managers: their own figures


_ALL = frozenset(Role)
_STAFF = frozenset({Role.SUPERVISOR, Role.ADMIN})

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.SELF: _ALL,
    Permission.USERS_READ: _STAFF,
    Permission.USERS_MANAGE: frozenset({Role.ADMIN}),
    Permission.DIRECTORIES_READ: _ALL,
    Permission.DIRECTORIES_MANAGE: frozenset({Role.ADMIN}),
    Permission.CLIENTS_READ: _ALL,
    Permission.CLIENTS_WRITE: _ALL,
    Permission.CLIENTS_IMPORT: frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN}),
    Permission.CLIENTS_EXPORT: frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN}),
    Permission.NOTES_WRITE: _ALL,
    Permission.AUDIT_READ: _STAFF,
    Permission.CALLS_READ: _ALL,
    Permission.CALLS_ORIGINATE: frozenset({Role.OPERATOR, Role.MANAGER, Role.SUPERVISOR}),
    Permission.CALLS_REVIEW: _STAFF,
    Permission.MESSAGES_SEND: _ALL,
    Permission.MESSAGES_BULK: frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN}),
    Permission.DEALS_READ: _ALL,
    Permission.DEALS_WRITE: _ALL,
    Permission.TASKS: _ALL,
    Permission.SCHEDULES_READ: _ALL,
    Permission.SCHEDULES_MANAGE: _STAFF,
    Permission.PLANS_READ: frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN}),
    Permission.PLANS_MANAGE: _STAFF,
    Permission.REPORTS_READ: frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN}),
}


def allowed(role: Role, permission: Permission) -> bool:
    return role in GRANTS[permission]


def sees_all_clients(user: User) -> bool:
    """Operators answer calls for everyone, supervisors and admins oversee everyone;
    managers work with their own clients and the unassigned pool."""
    return user.role is not Role.MANAGER


def can_access_client(user: User, client: Client) -> bool:
    return may_see_client_of(user, client.manager_id)


def may_see_client_of(user: User, manager_id: int | None) -> bool:
    """May `user` see a card that manager `manager_id` (None: nobody) owns."""
    return sees_all_clients(user) or manager_id in (None, user.id)


async def may_watch_client(session: AsyncSession, user_id: int, client_id: int) -> bool:
    """May that user follow that card live (both exist, and the card is in their scope)."""
    client = await session.get(Client, client_id)
    user = await session.get(User, user_id)
    return client is not None and user is not None and can_access_client(user, client)


def client_scope(user: User) -> ColumnElement[bool]:
    if sees_all_clients(user):
        return true()
    return or_(Client.manager_id.is_(None), Client.manager_id == user.id)
