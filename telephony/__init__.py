"""PBX adapters for Callcard. They emit the call events of `telephony.events` and know
nothing of the CRM or its database."""
