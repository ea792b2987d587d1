"""Realtime: the event bus (in-process or Redis), the backlog a reconnecting socket
resumes from, durable event streams, and the WebSocket hub."""
