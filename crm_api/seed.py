"""`callcard seed-demo`: users of every role, 50 clients with Russian names and numbers,
and a few communications, so a newcomer can log in and look around at once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts import service as auth
from crm_api.accounts.models import Role, User
from crm_api.clients.directories.models import ClientGroup, LeadSource, Segment
from crm_api.clients.models import Client, ClientKind
from crm_api.clients.service import create_client
from crm_api.clients.timeline import service as communications
from crm_api.clients.timeline.models import CommDirection, CommKind
from crm_api.clients.types import ClientCreate, EmailIn, PhoneIn
from crm_api.platform.db.base import utcnow
from crm_api.sales.demo import seed_sales
from crm_api.schedules import service as schedules


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    full_name: str
    role: Role
    extension: str | None


DEMO_USERS = (
    DemoUser("admin", "admin-demo-1", "Администратор Системы", Role.ADMIN, None),
    DemoUser("supervisor", "supervisor-demo-1", "Ольга Смирнова", Role.SUPERVISOR, "100"),
    DemoUser("manager", "manager-demo-1", "Иван Петров", Role.MANAGER, "101"),
    DemoUser("manager2", "manager-demo-2", "Анна Кузнецова", Role.MANAGER, "102"),
    DemoUser("manager3", "manager-demo-3", "Сергей Волков", Role.MANAGER, "103"),
    DemoUser("operator", "operator-demo-1", "Мария Соколова", Role.OPERATOR, "104"),
)

MALE_FIRST = [
    "Александр",
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Артём",
    "Илья",
    "Кирилл",
    "Михаил",
    "Никита",
    "Егор",
    "Павел",
    "Роман",
    "Владимир",
]
FEMALE_FIRST = [
    "Анастасия",
    "Мария",
    "Анна",
    "Виктория",
    "Екатерина",
    "Наталья",
    "Елена",
    "Ольга",
    "Татьяна",
    "Юлия",
    "Ирина",
    "Светлана",
    "Дарья",
    "Полина",
]
SURNAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
]
PATRONYMICS_M = ["Александрович", "Сергеевич", "Дмитриевич", "Андреевич", "Игоревич"]
PATRONYMICS_F = ["Александровна", "Сергеевна", "Дмитриевна", "Андреевна", "Игоревна"]
COMPANIES = [
    "ООО «СтройМонтаж»",
    "АО «ТехноПром»",
    "ООО «Альфа Логистик»",
    "ИП Сидоров А. В.",
    "ООО «Северный ветер»",
]
MOBILE_CODES = ["916", "917", "903", "905", "925", "926", "985", "999", "915", "977"]
SOURCES = ["Сайт", "Рекомендация", "Реклама Яндекс", "Выставка", "Холодный звонок"]
SEGMENTS = ["Розница", "Опт", "VIP"]
GROUPS = [("Постоянные", "#2e7d32"), ("Новые", "#1565c0"), ("Проблемные", "#c62828")]


def _person(rng: random.Random) -> str:
    surname = rng.choice(SURNAMES)
    if rng.random() < 0.5:
        return f"{surname} {rng.choice(MALE_FIRST)} {rng.choice(PATRONYMICS_M)}"
    return f"{surname}а {rng.choice(FEMALE_FIRST)} {rng.choice(PATRONYMICS_F)}"


def _mobile(rng: random.Random) -> str:
    code, a, b, c = (
        rng.choice(MOBILE_CODES),
        rng.randint(100, 999),
        rng.randint(10, 99),
        rng.randint(10, 99),
    )
    return f"8 {code} {a}-{b}-{c}"


async def seed_shifts(session: AsyncSession, users: dict[str, User]) -> None:
    """Someone takes calls at every hour of the week, so routing works out of the box: the
    day managers on weekdays 09-18, the operator every day 09-21 (weekends and evenings
    too), the night manager every night 21-09."""
    for name in ("manager", "manager2"):
        for weekday in range(5):
            await schedules.add_shift(session, users[name].id, weekday, time(9), time(18), False)
    for weekday in range(7):
        await schedules.add_shift(session, users["operator"].id, weekday, time(9), time(21), False)
        await schedules.add_shift(session, users["manager3"].id, weekday, time(21), time(9), True)


async def seed_demo(session: AsyncSession, clients: int = 50) -> list[DemoUser] | None:
    """Fills an empty database; returns the users made, or None if it had users."""
    if await session.scalar(select(func.count()).select_from(User)):
        return None
    rng = random.Random(2026)
    users = {}
    for demo in DEMO_USERS:
        users[demo.username] = await auth.create_user(
            session,
            username=demo.username,
            password=demo.password,
            full_name=demo.full_name,
            role=demo.role,
            extension=demo.extension,
        )
    sources = [LeadSource(name=n) for n in SOURCES]
    segments = [Segment(name=n) for n in SEGMENTS]
    groups = [ClientGroup(name=n, color=c) for n, c in GROUPS]
    session.add_all([*sources, *segments, *groups])
    await session.flush()
    managers = [users["manager"], users["manager2"], users["manager3"], None]
    admin = users["admin"]
    made: list[Client] = []
    for i in range(clients):
        is_company = i % 10 == 0 and i // 10 < len(COMPANIES)
        manager = managers[i % len(managers)]
        # Labels the UI names in the user's language (a kind, not Russian prose).
        phones = [PhoneIn(number=_mobile(rng), label="mobile")]
        if rng.random() < 0.2:
            office = f"+7 (495) {rng.randint(200, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
            phones.append(PhoneIn(number=office, label="work"))
        data = ClientCreate(
            kind=ClientKind.COMPANY if is_company else ClientKind.PERSON,
            name=COMPANIES[i // 10] if is_company else _person(rng),
            phones=phones,
            emails=[EmailIn(email=f"client{i}@example.ru")] if rng.random() < 0.6 else [],
            lead_source_id=rng.choice(sources).id,
            segment_id=rng.choice(segments).id,
            group_ids=[rng.choice(groups).id] if rng.random() < 0.5 else [],
            manager_id=manager.id if manager else None,
            address="г. Москва, ул. Тверская, д. 1" if rng.random() < 0.3 else None,
        )
        try:
            async with session.begin_nested():
                made.append(await create_client(session, admin, data, "RU"))
        except Exception:  # an unlucky duplicate number: skip it
            continue
    now = utcnow()
    for n, client in enumerate(made[:15]):
        author = (
            users["manager"]
            if client.manager_id is None
            else await session.get(User, client.manager_id)
        )
        assert author is not None
        await communications.add_note(
            session, author, client, "Клиент интересуется доставкой, перезвонить в пятницу.", None
        )
        await communications.record(
            session,
            communications.Fact(
                client_id=client.id,
                kind=CommKind.CALL,
                external_id=f"demo-call-{n}",
                direction=CommDirection.INBOUND,
                status="answered",
                occurred_at=now - timedelta(days=n, hours=2),
                user_id=author.id,
                details={
                    "disposition": "answered",
                    "ring_s": 4.0,
                    "talk_s": 60.0 + n * 7,
                    "caller": client.phones[0].e164 if client.phones else None,
                    "agents": [author.extension] if author.extension else [],
                },
            ),
        )
    await seed_shifts(session, users)
    await seed_sales(
        session,
        admin,
        [users["manager"], users["manager2"]],
        users["manager3"],
        made,
        rng,
    )
    return list(DEMO_USERS)
