"""SMPP command_status codes: which mean "try again later" and which are final."""

from __future__ import annotations

ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RBINDFAIL = 0x0D
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64  # temporary application error
ESME_RX_P_APPN = 0x65  # permanent application error

LINK_LOST = -1  # pseudo status: written, but the link died before the SMSC answered
NOT_SENT = -2  # pseudo status: never written (no link, or its deadline passed): safe to resend

NAMES = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x14: "ESME_RMSGQFUL",
    0x45: "ESME_RSUBMITFAIL",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0xFF: "ESME_RUNKNOWNERR",
}

# Conditions of the SMSC, not of the message: the same message may succeed later.
RETRYABLE = frozenset({ESME_RSYSERR, ESME_RMSGQFUL, ESME_RTHROTTLED, ESME_RX_T_APPN, 0x45, 0xFF})
# Bind failures a retry cannot fix without a configuration change (still retried, slowly).
BIND_CONFIG = frozenset({ESME_RINVPASWD, ESME_RINVSYSID})


def name(status: int) -> str:
    return NAMES.get(status, f"0x{status:08X}")


def is_retryable(status: int) -> bool:
    return status in RETRYABLE
