"""Client cards through the real HTTP API, on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role


async def _create(api: RunningApi, actor: Actor, **body: object) -> dict:
    async with api.client(actor.token) as http:
        r = await http.post("/clients", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_card_normalizes_every_phone_form(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    card = await _create(
        api,
        actors[Role.MANAGER],
        name="Иванов Иван",
        phones=[
            {"number": "8 916 123-45-67", "label": "мобильный"},
            {"number": "+44 20 7946 0958"},
        ],
        emails=[{"email": "Ivanov@Example.RU"}],
    )
    assert [p["e164"] for p in card["phones"]] == ["+79161234567", "+442079460958"]
    assert card["phones"][0]["raw"] == "8 916 123-45-67"
    assert card["emails"][0]["email"] == "ivanov@example.ru"
    assert card["manager"]["id"] == actors[Role.MANAGER].user.id  # a manager's own card
    async with api.client(actors[Role.OPERATOR].token) as http:
        for form in ("+7 (916) 123-45-67", "916 123 45 67", "79161234567", "8(916)1234567"):
            r = await http.get("/clients/lookup", params={"phone": form})
            assert r.status_code == 200, (form, r.text)
            assert r.json()["id"] == card["id"]
        r = await http.get("/clients/lookup", params={"phone": "8 916 000-00-00"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


async def test_duplicate_phone_or_email_answers_409_naming_the_card(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    first = await _create(
        api,
        actors[Role.SUPERVISOR],
        name="Петров Пётр",
        phones=[{"number": "+7 903 555-66-77"}],
        emails=[{"email": "p@x.ru"}],
    )
    async with api.client(actors[Role.OPERATOR].token) as http:
        r = await http.post(
            "/clients", json={"name": "Другой", "phones": [{"number": "8 903 5556677"}]}
        )
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "duplicate_contact"
        assert err["details"]["client_id"] == first["id"]
        assert err["details"]["client_name"] == "Петров Пётр"
        assert "+79035556677" in err["message"]
        r = await http.post("/clients", json={"name": "Третий", "emails": [{"email": "P@X.RU"}]})
        assert r.status_code == 409 and r.json()["error"]["details"]["field"] == "email"
        r = await http.get("/clients", params={"q": "Другой"})
        assert r.json()["total"] == 0  # nothing half-written


async def test_bad_input_is_named_and_changes_nothing(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client(actors[Role.ADMIN].token) as http:
        r = await http.post("/clients", json={"name": "X", "phones": [{"number": "8 916"}]})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "validation_error"
        assert err["details"]["fields"][0]["field"] == "phones.0.number"
        assert "'8 916'" in err["message"]
        r = await http.post(
            "/clients", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = await http.post("/clients", json={"name": "", "emails": [{"email": "not-an-email"}]})
        fields = {f["field"] for f in r.json()["error"]["details"]["fields"]}
        assert r.status_code == 422 and {"name", "emails.0.email"} <= fields
        r = await http.post("/clients", json={"name": "Y", "segment_id": 424242})
        assert (
            r.status_code == 422
            and r.json()["error"]["details"]["fields"][0]["field"] == "segment_id"
        )
        r = await http.get("/clients/987654")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await http.get("/clients/abc")
        assert r.status_code == 422
        assert (await http.get("/clients")).json()["total"] == 0


async def test_search_by_name_phone_forms_email_and_filters(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        seg = (await http.post("/directories/segments", json={"name": "VIP"})).json()
        grp = (
            await http.post("/directories/groups", json={"name": "Новые", "color": "#1565c0"})
        ).json()
    a = await _create(
        api,
        admin,
        name="Смирнова Анна Сергеевна",
        phones=[{"number": "+7 916 111-22-33"}],
        segment_id=seg["id"],
        group_ids=[grp["id"]],
        manager_id=actors[Role.MANAGER].user.id,
    )
    b = await _create(
        api,
        admin,
        name="ООО «СтройМонтаж»",
        kind="company",
        phones=[{"number": "+7 495 765-43-21"}],
        emails=[{"email": "info@stroy.ru"}],
    )
    c = await _create(api, admin, name="John Smith", phones=[{"number": "+1 650 253 0000"}])
    async with api.client(admin.token) as http:

        async def ids(**params: object) -> list[int]:
            r = await http.get("/clients", params=params)
            assert r.status_code == 200, r.text
            return [item["id"] for item in r.json()["items"]]

        assert await ids(q="смирнова") == [a["id"]]  # Cyrillic, any case
        assert await ids(q="СМИРН") == [a["id"]]
        assert await ids(q="8 916 111") == [a["id"]]
        assert await ids(q="+7 (916) 111-22-33") == [a["id"]]
        assert await ids(q="22-33") == [a["id"]]  # the last digits
        assert await ids(q="765 43") == [b["id"]]
        assert await ids(q="stroy.ru") == [b["id"]]
        assert await ids(email="INFO@") == [b["id"]]
        assert await ids(phone="+1 650 253 0000") == [c["id"]]
        assert await ids(segment_id=seg["id"]) == [a["id"]]
        assert await ids(group_id=grp["id"]) == [a["id"]]
        assert await ids(manager_id=actors[Role.MANAGER].user.id) == [a["id"]]
        assert await ids(kind="company") == [b["id"]]
        assert set(await ids(unassigned=True)) == {b["id"], c["id"]}
        assert await ids(sort="name") == [c["id"], b["id"], a["id"]]
        r = await http.get("/clients", params={"sort": "name", "page": 2, "page_size": 2})
        assert r.json()["total"] == 3 and [i["id"] for i in r.json()["items"]] == [a["id"]]
        r = await http.get("/clients", params={"sort": "bogus"})
        assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "sort"


async def test_managers_work_with_own_and_unassigned_clients_only(
    api: RunningApi, actors: dict[Role, Actor], db
) -> None:
    from support.factories import make_user

    async with db() as session:
        other = await make_user(session, Role.MANAGER, extension="109")
        await session.commit()
    mine = await _create(api, actors[Role.MANAGER], name="Мой клиент")
    theirs = await _create(api, other, name="Чужой клиент", phones=[{"number": "89031110001"}])
    pool = await _create(api, actors[Role.ADMIN], name="Ничей клиент")
    async with api.client(actors[Role.MANAGER].token) as http:
        listed = {i["id"] for i in (await http.get("/clients")).json()["items"]}
        assert listed == {mine["id"], pool["id"]}
        r = await http.get("/clients/lookup", params={"phone": "8 903 111-00-01"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["details"] == {"client_id": theirs["id"]}
        for method, path, body in (
            ("GET", f"/clients/{theirs['id']}", None),
            ("PATCH", f"/clients/{theirs['id']}", {"name": "x"}),
            ("GET", f"/clients/{theirs['id']}/communications", None),
            ("POST", f"/clients/{theirs['id']}/notes", {"body": "x"}),
        ):
            r = await http.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden"
        assert (await http.get(f"/clients/{pool['id']}")).status_code == 200
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        assert (await http.get(f"/clients/{theirs['id']}")).status_code == 200
        r = await http.get("/clients/lookup", params={"phone": "8 903 111-00-01"})
        assert r.json()["manager"] == {"id": other.user.id, "full_name": other.user.full_name}


async def test_update_timeline_notes_comments_and_audit(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager, supervisor = actors[Role.MANAGER], actors[Role.SUPERVISOR]
    card = await _create(api, manager, name="Козлов Павел", phones=[{"number": "89051234567"}])
    async with api.client(manager.token) as http:
        r = await http.patch(
            f"/clients/{card['id']}",
            json={
                "name": "Козлов Павел Игоревич",
                "phones": [{"number": "89051234567"}, {"number": "84957654321"}],
                "birthday": "1985-03-14",
                "address": "Москва",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["updated_by"]["id"] == manager.user.id
        note = (
            await http.post(f"/clients/{card['id']}/notes", json={"body": "Перезвонить в пятницу"})
        ).json()
        r = await http.post(f"/communications/{note['id']}/comments", json={"body": "Согласен"})
        assert r.status_code == 201
        timeline = (await http.get(f"/clients/{card['id']}/communications")).json()
        assert timeline["total"] == 1
        page = (await http.get(f"/clients/{card['id']}/card")).json()
        assert page["client"]["name"] == "Козлов Павел Игоревич"
        assert page["communications_total"] == 1
        assert page["communications"][0]["body"] == "Перезвонить в пятницу"
        assert timeline["items"][0]["kind"] == "note"
        assert timeline["items"][0]["comments"][0]["body"] == "Согласен"
        assert (await http.get(f"/clients/{card['id']}/audit")).status_code == 403
    async with api.client(supervisor.token) as http:
        audit = (await http.get(f"/clients/{card['id']}/audit")).json()["items"]
    actions = [(e["action"], e["entity"]) for e in audit]
    assert actions == [
        ("comment", "communication"),
        ("create", "note"),
        ("update", "client"),
        ("create", "client"),
    ]
    update = audit[2]
    assert update["user"]["id"] == manager.user.id
    assert update["changes"]["name"] == ["Козлов Павел", "Козлов Павел Игоревич"]
    assert update["changes"]["phones"] == [["+79051234567"], ["+79051234567", "+74957654321"]]
    assert update["changes"]["birthday"] == [None, "1985-03-14"]


async def test_one_card_keeps_every_phone_email_and_group_in_order(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        groups = [
            (await http.post("/directories/groups", json={"name": name})).json()["id"]
            for name in ("Опт", "Новые", "Партнёры")
        ]
        segment = (await http.post("/directories/segments", json={"name": "VIP"})).json()
        source = (await http.post("/directories/lead-sources", json={"name": "Сайт"})).json()
    company = await _create(api, admin, name="ООО «Вектор»", kind="company")
    card = await _create(
        api,
        admin,
        name="Орлова Вера",
        phones=[{"number": "89161110001"}, {"number": "89161110002"}, {"number": "84951110003"}],
        emails=[{"email": "vera@a.ru"}, {"email": "vera@b.ru"}],
        group_ids=groups,
        segment_id=segment["id"],
        lead_source_id=source["id"],
        company_id=company["id"],
        manager_id=actors[Role.MANAGER].user.id,
    )
    phones = ["+79161110001", "+79161110002", "+74951110003"]
    async with api.client(actors[Role.OPERATOR].token) as http:
        found = (await http.get("/clients/lookup", params={"phone": "8 495 111-00-03"})).json()
        got = (await http.get(f"/clients/{card['id']}/card")).json()["client"]
        listed = (await http.get("/clients", params={"q": "Орлова"})).json()["items"]
    assert found["id"] == card["id"]
    assert found["primary_phone"] == phones[0] and found["primary_email"] == "vera@a.ru"
    assert sorted(g["id"] for g in found["groups"]) == sorted(groups)
    assert found["company_name"] == "ООО «Вектор»" and found["segment"]["name"] == "VIP"
    # The lookup's own query answers what the list makes of the loaded card.
    by_id = {g["id"]: g for g in listed[0]["groups"]}
    assert {**found, "groups": None} == {**listed[0], "groups": None}
    assert [by_id[g["id"]] for g in found["groups"]] == found["groups"]
    assert [p["e164"] for p in got["phones"]] == phones
    assert [e["email"] for e in got["emails"]] == ["vera@a.ru", "vera@b.ru"]
    assert sorted(g["id"] for g in got["groups"]) == sorted(groups)


async def test_timeline_pages_count_every_communication(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    card = await _create(api, manager, name="Зайцев Олег", phones=[{"number": "89057770011"}])
    async with api.client(manager.token) as http:
        empty = (await http.get(f"/clients/{card['id']}/card")).json()
        assert (empty["communications"], empty["communications_total"]) == ([], 0)
        for n in range(5):
            await http.post(f"/clients/{card['id']}/notes", json={"body": f"note {n}"})

        async def page(no: int, **params: object) -> tuple[list[str], int]:
            r = await http.get(
                f"/clients/{card['id']}/communications",
                params={"page": no, "page_size": 2, **params},
            )
            assert r.status_code == 200, r.text
            return [c["body"] for c in r.json()["items"]], r.json()["total"]

        assert await page(1) == (["note 4", "note 3"], 5)
        assert await page(3) == (["note 0"], 5)
        assert await page(4) == ([], 5)  # past the end: still the whole count
        assert await page(1, kind="call") == ([], 0)
        assert await page(2, kind="note") == (["note 2", "note 1"], 5)
        got = (await http.get(f"/clients/{card['id']}/card")).json()
    assert got["communications_total"] == 5
    assert [c["body"] for c in got["communications"]][:2] == ["note 4", "note 3"]


async def test_company_with_contact_persons_and_custom_fields(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    async with api.client(admin.token) as http:
        r = await http.post(
            "/directories/custom-fields", json={"key": "inn", "label": "ИНН", "type": "text"}
        )
        assert r.status_code == 201
        await http.post(
            "/directories/custom-fields",
            json={"key": "employees", "label": "Сотрудники", "type": "number"},
        )
    company = await _create(
        api,
        admin,
        name="АО «ТехноПром»",
        kind="company",
        custom_fields={"inn": "7701234567", "employees": 120},
    )
    person = await _create(
        api, admin, name="Лебедев Андрей", company_id=company["id"], position="Директор"
    )
    async with api.client(admin.token) as http:
        got = (await http.get(f"/clients/{company['id']}")).json()
        assert got["custom_fields"] == {"inn": "7701234567", "employees": 120}
        assert [c["id"] for c in got["contacts"]] == [person["id"]]
        assert (await http.get(f"/clients/{person['id']}")).json()[
            "company_name"
        ] == "АО «ТехноПром»"
        r = await http.patch(
            f"/clients/{company['id']}", json={"custom_fields": {"employees": "many"}}
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"]["fields"][0]["field"] == "custom_fields.employees"
        r = await http.patch(f"/clients/{company['id']}", json={"custom_fields": {"nope": 1}})
        assert r.status_code == 422
        r = await http.post("/clients", json={"name": "x", "company_id": person["id"]})
        assert (
            r.status_code == 422
            and r.json()["error"]["details"]["fields"][0]["field"] == "company_id"
        )


async def test_login_cookie_session_logout_and_saved_views(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    from support.factories import PASSWORD

    manager = actors[Role.MANAGER]
    async with api.client() as http:
        http.headers["Origin"] = api.base_url  # as a browser sends it with each write
        r = await http.post(
            "/auth/login", json={"username": manager.user.username, "password": "wrong"}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
        r = await http.post(
            "/auth/login", json={"username": manager.user.username.upper(), "password": PASSWORD}
        )
        assert r.status_code == 200
        assert "callcard_session" in r.cookies
        assert (await http.get("/auth/me")).json()["role"] == "manager"
        r = await http.patch("/auth/me", json={"language": "en"})
        assert r.json()["language"] == "en"
        r = await http.post(
            "/views", json={"name": "Мои VIP", "filters": {"q": "916", "sort": "name"}}
        )
        assert r.status_code == 201
        assert (
            await http.post("/views", json={"name": "Мои VIP", "filters": {}})
        ).status_code == 409
        views = (await http.get("/views")).json()["items"]
        assert views[0]["filters"]["q"] == "916" and views[0]["filters"]["sort"] == "name"
        assert (await http.post("/auth/logout")).status_code == 204
        http.cookies.clear()
        assert (await http.get("/auth/me")).status_code == 401


async def test_search_by_the_last_digits_even_when_they_start_with_8(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    tail = await _create(
        api, actors[Role.SUPERVISOR], name="Хвост", phones=[{"number": "+7 495 838-24-30"}]
    )
    other = await _create(
        api, actors[Role.SUPERVISOR], name="Другой", phones=[{"number": "+7 916 738-24-31"}]
    )
    async with api.client(actors[Role.SUPERVISOR].token) as http:

        async def found(q: str) -> set[int]:
            r = await http.get("/clients", params={"q": q})
            assert r.status_code == 200, r.text
            return {c["id"] for c in r.json()["items"]}

        assert await found("838 24 30") == {tail["id"]}  # a tail, not "8" for "+7"
        assert await found("8 495 838") == {tail["id"]}  # the trunk prefix at the start
        assert await found("8 916") == {other["id"]}
        assert await found("8 (495) 838-24-30") == {tail["id"]}  # a whole number
