"""Every frame `/ws` sends, one model per type (as `models.py` lists every table): the
models live beside their publishers (each feature's `notifier.py`, the socket's own in
`platform/realtime/ws.py`); the OpenAPI document carries the union as `Frame`, so the
web app's types for frames are generated like those of the HTTP answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from crm_api.accounts.notifier import SessionChangedFrame
from crm_api.calls.notifier import (
    CallAnsweredFrame,
    CallDiallingFrame,
    CallEndedFrame,
    CallFailedFrame,
    CallMissedFrame,
    CallOriginatingFrame,
    CallRingingFrame,
)
from crm_api.clients.notifier import ClientUpdatedFrame, ImportProgressFrame
from crm_api.clients.timeline.notifier import CommunicationCommentedFrame, CommunicationCreatedFrame
from crm_api.messages.notifier import (
    EmailStatusFrame,
    SmsBulkDoneFrame,
    SmsBulkProgressFrame,
    SmsReceivedFrame,
    SmsStatusFrame,
)
from crm_api.platform.notifier import LinkStatusFrame
from crm_api.platform.realtime.ws import (
    ErrorFrame,
    HelloFrame,
    PongFrame,
    ResyncFrame,
    UnwatchedFrame,
    WatchingFrame,
)
from crm_api.sales.notifier import DealUpdatedFrame
from crm_api.tasks.notifier import TaskDueFrame, TaskUpdatedFrame

Frame = Annotated[
    CallOriginatingFrame
    | CallDiallingFrame
    | CallRingingFrame
    | CallAnsweredFrame
    | CallFailedFrame
    | CallMissedFrame
    | CallEndedFrame
    | ClientUpdatedFrame
    | ImportProgressFrame
    | CommunicationCreatedFrame
    | CommunicationCommentedFrame
    | DealUpdatedFrame
    | TaskUpdatedFrame
    | TaskDueFrame
    | SmsStatusFrame
    | SmsReceivedFrame
    | SmsBulkProgressFrame
    | SmsBulkDoneFrame
    | EmailStatusFrame
    | LinkStatusFrame
    | SessionChangedFrame
    | HelloFrame
    | PongFrame
    | ResyncFrame
    | WatchingFrame
    | UnwatchedFrame
    | ErrorFrame,
    Field(discriminator="type"),
]
