"""Callcard CRM: domain, storage, HTTP and WebSocket API, and the services that turn call
and SMS events into CRM facts."""
