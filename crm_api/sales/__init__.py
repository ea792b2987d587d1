"""The sales side's helpers that are neither storage nor use cases (demo data)."""
