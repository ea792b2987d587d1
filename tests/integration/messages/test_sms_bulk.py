"""Bulk SMS to a saved view: skips, the rate limit, progress frames and the report."""

from __future__ import annotations

import time

from support.factories import Actor
from support.server import RunningApi
from support.sms import make_client
from support.smsc import SmscProcess
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role


async def test_bulk_to_a_saved_view_skips_opted_out_and_keeps_the_rate(
    sms_api: RunningApi, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    async with sms_api.client(manager.token) as http:
        mine = [
            await make_client(
                http, f"Промо {i}", f"+7 917 100-00-{i:02d}", manager_id=manager.user.id
            )
            for i in range(1, 9)
        ]
        landline = await make_client(
            http, "Промо офис", "+7 495 100-00-00", manager_id=manager.user.id
        )
        await make_client(http, "Другой", "+7 917 200-00-00")  # not in the view
        await smsc.send_mo("79171000008", "STOP")  # the last one opts out

        async def opted_out() -> bool:
            return bool((await http.get(f"/clients/{mine[-1]['id']}")).json()["sms_opted_out"])

        await wait_for(opted_out)
        view = await http.post(
            "/views",
            json={"name": "Мои промо", "filters": {"q": "Промо", "manager_id": manager.user.id}},
        )
        assert view.status_code == 201, view.text

        bad = await http.post("/sms/bulk", json={"text": "x"})
        assert bad.status_code == 422  # neither a view nor a filter
        other = await http.post("/sms/bulk", json={"text": "x", "view_id": 999999})
        assert other.status_code == 404

        async with open_socket(sms_api.ws_url, manager.token) as ws:
            sock = Socket(ws)
            await sock.next_of("hello")
            asked_at = time.time()
            r = await http.post(
                "/sms/bulk",
                json={
                    "text": "{first_name}, скидка для вас",
                    "view_id": view.json()["id"],
                    "rate": 10,
                },
            )
            assert r.status_code == 202, r.text
            bulk = r.json()
            assert bulk["total"] == 7
            assert sorted((s["client_id"], s["reason"]) for s in bulk["skipped"]) == sorted(
                [(mine[-1]["id"], "opted_out"), (landline["id"], "no_mobile_phone")]
            )
            done = await sock.next_of("sms.bulk.done", within=20)
            progress = [f for f in sock.frames if f["type"] == "sms.bulk.progress"]
        assert progress, "progress frames before the end"
        assert done["data"]["delivered"] == 7 and done["data"]["failed"] == 0
        report = (await http.get(f"/sms/bulk/{bulk['id']}")).json()
        assert (report["status"], report["sent"], report["delivered"], report["failed"]) == (
            "done",
            7,
            7,
            0,
        )

    rows = [r for r in smsc.rows("submit") if r["dest"].startswith("7917100")]
    assert len(rows) == 7
    times = sorted(r["at"] for r in rows)
    # 10 per second: message n is not due before n/10 s after the bulk was asked for. A
    # loaded machine only sends later, so these lower bounds hold however slow it is.
    for n, at in enumerate(times):
        assert at >= asked_at + n / 10 - 0.02, (n, at - asked_at)

    async with sms_api.client(actors[Role.OPERATOR].token) as http:
        r = await http.get(f"/sms/bulk/{bulk['id']}")
        assert r.status_code == 403  # operators do not send bulk
