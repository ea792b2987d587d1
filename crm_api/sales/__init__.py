"""Deals and their pipeline stages, sales plans, sales reports, and demo data."""
