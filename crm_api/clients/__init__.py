"""Client cards: the list and its filters, the card, lookup by number, import/export,
directories (groups, segments, lead sources, custom fields) and the timeline."""
