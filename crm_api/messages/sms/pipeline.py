"""The SMS feature: the SMPP gateway and the SMS worker, when CALLCARD_SMPP_URL is set.
Runs inside `callcard run` or alone as `callcard sms` (one per SMSC bind)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from crm_api.messages.sms.service import SmsService
from crm_api.platform.deps import Services
from crm_api.platform.settings import Settings
from sms_gateway import SmppConfig, SmsGateway

log = logging.getLogger(__name__)


def gateway_config(settings: Settings) -> SmppConfig:
    assert settings.smpp_url
    return SmppConfig.from_url(
        settings.smpp_url,
        window=settings.smpp_window,
        max_rate=settings.smpp_max_rate,
        source_addr=settings.smpp_source_addr,
        enquire_link_every=settings.smpp_enquire_link_s,
    )


async def start_sms(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    if not settings.smpp_url:

        async def nothing() -> None:
            return None

        return nothing
    gateway = SmsGateway(gateway_config(settings))
    await gateway.start()
    gauges = services.metrics.sms
    gauges.bound.set_function(lambda: gateway.connected)
    gauges.window.set(settings.smpp_window)
    gauges.window_in_use.set_function(lambda: gateway.in_flight)
    gauges.queued.set_function(lambda: gateway.queued)
    service = SmsService(
        services.sessions,
        services.hub,
        gateway,
        region=settings.default_region,
        # Enough claimed that the window stays full while results and claims are written.
        max_in_flight=max(settings.smpp_window * 20, 50),
        claim_for=timedelta(seconds=settings.sms_claim_s),
        receipt_overdue=timedelta(seconds=settings.sms_receipt_overdue_s),
        receipt_deadline=timedelta(seconds=settings.sms_receipt_deadline_s),
    )
    service.uncertain_hold = timedelta(seconds=settings.sms_receipt_wait_s)
    services.links.sms_outbox = service
    try:
        unwatch = await services.link_status.watch("smsc", lambda: gateway.connected)
    except BaseException:
        await gateway.stop()  # a started link must not outlive a start that failed
        raise
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="sms")
    log.info("SMS over SMPP to %s:%s", gateway.config.host, gateway.config.port)

    async def shutdown() -> None:
        unwatch()
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()
        finally:
            # Whatever became of the worker: a gateway left running reconnects to the
            # SMSC's address for good, and binds to whatever listens there next.
            await gateway.stop()

    return shutdown
