"""The call-event service: turns the PBX's typed call events into CRM facts (the card,
the call log with its recording, the callback task) and live frames (screen-pop)."""
