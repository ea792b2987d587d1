"""Supervisor desk: live calls, the recordings review with waveform player (play, speed,
seek over HTTP Range) and the scoring form."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e.helpers import login, new_context, pbx, shoot, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.call_events import answered_end
from support.server import RunningApi

from crm_api.calls.models import Call
from crm_api.clients.models import Client
from telephony import events as ev
from telephony.ami.simulator import CAPTURES

WAV = CAPTURES / "incoming-answered.wav"
MANAGER_EXT = "101"


@pytest.fixture
def capture() -> Path:
    """A real MixMonitor recording from the Asterisk captures."""
    return WAV


async def test_live_board_then_listen_seek_and_score(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], capture: Path
) -> None:
    async with db() as session:
        client = (
            await session.scalars(
                select(Client).options(selectinload(Client.phones)).order_by(Client.id).offset(5)
            )
        ).first()
        assert client is not None
        caller = client.phones[0].e164
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1")
    await page.goto("/supervisor")
    board = page.get_by_test_id("live-calls")
    await expect(board.get_by_text("Сейчас нет звонков")).to_be_visible()

    t0 = datetime.now(UTC) - timedelta(seconds=30)
    name = "rec-e2e-1.wav"
    shutil.copy(capture, app.settings.recordings_dir / name)
    await pbx(
        app,
        ev.CallStarted(
            call_id="rec-1", at=t0, direction=ev.Direction.INBOUND, caller=caller, callee="4950"
        ),
        ev.CallRinging(call_id="rec-1", at=t0, agent=MANAGER_EXT),
        ev.CallAnswered(call_id="rec-1", at=t0 + timedelta(seconds=3), agent=MANAGER_EXT),
        ev.RecordingStarted(call_id="rec-1", at=t0, file=f"/var/spool/asterisk/monitor/{name}"),
    )
    # The live board follows the call: it is answered by the manager right now.
    row = board.locator("tr[data-call-id='rec-1']")
    await expect(row).to_contain_text("отвечен")
    await expect(row).to_contain_text("Иван Петров")
    # The supervisor's own console does not pop a call ringing someone else's phone.
    await expect(page.locator("aside.floating")).to_have_count(0)
    await shoot(page, "supervisor-live-ru")

    await pbx(
        app,
        answered_end("rec-1", t0 + timedelta(seconds=30), MANAGER_EXT, ring_s=3, talk_s=27),
    )
    await expect(board.get_by_text("Сейчас нет звонков")).to_be_visible()
    async with db() as session:
        call_id = await session.scalar(select(Call.id).where(Call.pbx_call_id == "rec-1"))

    await page.reload()
    await page.get_by_test_id(f"review-row-{call_id}").locator("td").first.click()
    player = page.get_by_test_id("recording-player")
    await expect(player).to_have_attribute("data-ready", "true")  # decoded: waveform drawn
    wave = player.get_by_role("slider")
    total = int(await wave.get_attribute("aria-valuemax") or 0)
    assert total >= 2  # the capture is about three seconds long

    await player.get_by_test_id("play").click()
    await expect(player.get_by_test_id("play")).to_have_text("Пауза")
    await player.get_by_test_id("play").click()
    await expect(player.get_by_test_id("play")).to_have_text("Слушать")
    # Seek: the arrow key jumps forward; the media element follows (Range requests).
    await wave.focus()
    await wave.press("Home")  # ignored: stays where it is
    await wave.press("ArrowRight")
    await expect(wave).to_have_attribute("aria-valuenow", str(total))
    media_time = await page.evaluate(
        "() => document.querySelector('[data-testid=player-media]')?.currentTime"
    )
    assert media_time is not None and media_time >= total - 1
    await expect(player.get_by_role("button", name="Назад 5 с")).to_have_text("« 5 с")
    await player.get_by_role("button", name="Назад 5 с").click()
    await expect(wave).to_have_attribute("aria-valuenow", "0")
    await page.get_by_label("Скорость").first.click()
    await page.locator(".n-base-select-option", has_text="1,5×").click()
    rate = await page.evaluate(
        "() => document.querySelector('[data-testid=player-media]')?.playbackRate"
    )
    assert rate == 1.5
    await shoot(page, "supervisor-review-ru")

    # Scoring: incomplete criteria cannot be saved; a full score is stored.
    form = page.get_by_test_id("score-form")
    save = form.get_by_role("button", name="Сохранить")
    await expect(save).to_be_disabled()
    for criterion, points in [
        ("Приветствие", "5"),
        ("Выявление потребности", "4"),
        ("Предложение решения", "4"),
        ("Вежливость", "5"),
        ("Завершение", "3"),
    ]:
        await form.get_by_role("group", name=criterion).get_by_text(points, exact=True).click()
    await form.get_by_label("Комментарий").fill("Хорошо выявил потребность")
    await expect(form.get_by_test_id("score-average")).to_have_text("4,2")
    await save.click()
    await expect(page.get_by_test_id(f"review-row-{call_id}")).to_contain_text("4,2")
    async with db() as session:
        call = await session.get(Call, call_id)
    assert call is not None and call.score is not None
    score = call.score
    assert score["criteria"] == {
        "greeting": 5,
        "needs": 4,
        "solution": 4,
        "politeness": 5,
        "closing": 3,
    }
    assert score["comment"] == "Хорошо выявил потребность"
    await context.close()


async def answered_call(
    app: RunningApi, call_id: str, caller: str, file: str, at: datetime
) -> None:
    await pbx(
        app,
        ev.CallStarted(
            call_id=call_id, at=at, direction=ev.Direction.INBOUND, caller=caller, callee="4950"
        ),
        ev.CallRinging(call_id=call_id, at=at, agent=MANAGER_EXT),
        ev.CallAnswered(call_id=call_id, at=at + timedelta(seconds=2), agent=MANAGER_EXT),
        ev.RecordingStarted(call_id=call_id, at=at, file=f"/var/spool/asterisk/monitor/{file}"),
        ev.CallEnded(
            call_id=call_id,
            at=at + timedelta(seconds=20),
            direction=ev.Direction.INBOUND,
            disposition=ev.Disposition.ANSWERED,
            cause=16,
            ring_s=2,
            talk_s=18,
        ),
    )


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_call_whose_recording_file_is_missing_is_named_not_broken(
    app: RunningApi, browser: Browser, capture: Path, lang: str
) -> None:
    words = {
        "ru": ("Есть запись", "Файла пока нет", "Файла записи на сервере нет"),
        "en": ("Recorded", "No file yet", "The recording file is not on the server"),
    }[lang]
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    shutil.copy(capture, app.settings.recordings_dir / f"with-{lang}.wav")
    await answered_call(app, f"with-{lang}", "+79161110001", f"with-{lang}.wav", t0)
    await answered_call(
        app, f"without-{lang}", "+79161110002", f"gone-{lang}.wav", t0 + timedelta(minutes=1)
    )
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", lang)
    await page.goto("/supervisor")
    table = page.get_by_test_id("review-table")
    # "With recording" (on by default) lists only the call that can be played.
    await expect(table.locator("[data-recording]")).to_have_count(1)
    await expect(table.locator("[data-recording=playable]")).to_have_text(words[0])
    await page.get_by_role("checkbox").first.click()  # off: every call, each with its state
    missing = table.locator("[data-recording=missing]")
    await expect(missing).to_have_text(words[1])
    await missing.click()
    state = page.get_by_test_id("recording-state")
    await expect(state).to_contain_text(words[2])
    await expect(page.get_by_test_id("recording-player")).to_have_count(0)
    await expect(page.get_by_text("404")).to_have_count(0)
    await shoot_widths(page, f"supervisor-recording-missing-{lang}")
    await table.locator("[data-recording=playable]").click()
    await expect(page.get_by_test_id("recording-player")).to_have_attribute("data-ready", "true")
    await context.close()
