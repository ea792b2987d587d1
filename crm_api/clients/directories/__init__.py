"""Directories of the card: groups, segments, lead sources and custom fields."""
