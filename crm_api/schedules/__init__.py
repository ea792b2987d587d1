"""Work schedules (shifts and exceptions) and the routing policy built on them."""
