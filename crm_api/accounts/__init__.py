"""Users, sign-in (passwords, tokens), the one permission table, and the audit log."""
