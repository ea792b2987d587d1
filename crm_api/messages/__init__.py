"""Messages to clients (SMS and e-mail): the persistent outbox, the worker that sends
it, and the channels that carry it."""
