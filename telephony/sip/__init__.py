"""The SIP bridge: Callcard answers a SIP trunk itself (pjsua2 worker processes, a pool
that drives each call's state machine and emits the normalized call events)."""
