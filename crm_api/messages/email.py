"""E-mail from the card over SMTP (aiosmtplib), with the outbox's guarantees: claimed
before sending, a final state once the server took it ("sent") or refused it for good,
retried with backoff while the server is away or answers 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.clients.models import Client
from crm_api.messages import notifier
from crm_api.messages.models import OutboxMessage
from crm_api.messages.outbox import claim_due, retry_later, set_status
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.realtime.outage import Outage
from crm_api.platform.settings import Settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, message: OutboxMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_from
        mail["To"] = message.to_address
        mail["Subject"] = message.subject or ""
        mail["Date"] = formatdate(localtime=False)
        # A stable id: a resend after a crash carries the same Message-ID, which lets
        # receiving systems drop the duplicate.
        domain = self.settings.smtp_from.rpartition("@")[2] or "callcard"
        mail["Message-ID"] = f"<outbox-{message.id}.{int(message.created_at.timestamp())}@{domain}>"
        mail.set_content(message.body)
        return mail

    async def send(self, message: OutboxMessage) -> tuple[str, str | None]:
        """("sent" | "failed" | "retry", error)."""
        s = self.settings
        assert s.smtp_host
        try:
            await aiosmtplib.send(
                self.build(message),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user,
                password=s.smtp_password,
                start_tls=s.smtp_starttls,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            kind = "retry" if all(400 <= c < 500 for c in codes) else "failed"
            return kind, f"recipient refused: {e.recipients[0].message}"
        except aiosmtplib.SMTPResponseException as e:
            return ("retry" if 400 <= e.code < 500 else "failed"), f"SMTP {e.code}: {e.message}"
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            return "retry", f"SMTP server: {e}"
        return "sent", None


class EmailService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        sender: SmtpSender,
        *,
        poll: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.sender = sender
        self.poll = poll
        self.concurrency = concurrency
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        database = Outage("e-mail outbox: the database or the SMTP server", log)
        while not stop.is_set():
            try:
                sent = await self.run_once()
                database.ok()
            except Exception as exc:
                database.failed_or_bug(exc, "the e-mail outbox failed")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll)
                self.wake.clear()

    async def run_once(self) -> int:
        async with self.sessions() as session:
            ids = await claim_due(session, "email", utcnow(), self.concurrency * 4)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(message_id: int) -> None:
            async with limit:
                await self._deliver(message_id)

        await asyncio.gather(*(one(i) for i in ids))
        return len(ids)

    async def _deliver(self, message_id: int) -> None:
        async with self.sessions() as session:
            message = await session.get(OutboxMessage, message_id)
            if message is None or message.status != "sending":
                return
            outcome, error = await self.sender.send(message)
            now = utcnow()
            if outcome == "retry" and message.attempts >= MAX_ATTEMPTS:
                outcome, error = "expired", f"gave up: {error}"
            if outcome == "retry":
                retry_later(message, error or "try again", now)
                status = None
            else:
                await set_status(session, message, outcome, error=error)
                status = outcome
            manager = await session.scalar(
                select(Client.manager_id).where(Client.id == message.client_id)
            )
            await session.commit()
        if status is not None:
            await notifier.email_status(self.hub, message, status, error, manager)


async def start_email(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    if not settings.smtp_host:

        async def nothing() -> None:
            return None

        return nothing
    service = EmailService(services.sessions, services.hub, SmtpSender(settings))
    services.links.email_outbox = service
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="email")

    async def shutdown() -> None:
        stop.set()
        service.wake.set()
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()

    return shutdown
