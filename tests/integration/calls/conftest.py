from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.server import RunningApi, running_api

from crm_api.calls.pipeline import start_call_events
from crm_api.platform.settings import Settings


@pytest.fixture
async def calls_api(settings: Settings) -> AsyncIterator[RunningApi]:
    """Callcard with the call-event pipeline running (PBX events enter through its sink)."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as running:
        yield running
