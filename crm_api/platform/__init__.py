"""What every feature shares: settings, the database (base, session, migrations), the realtime
bus, hub and streams, errors, and the runtime that builds them once."""
