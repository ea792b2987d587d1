"""The call-event service's plain row of a call stays the calls table's row."""

from __future__ import annotations

from dataclasses import fields

from crm_api.calls.models import Call, CallRow


def test_a_call_row_has_every_column_of_the_calls_table_and_nothing_else() -> None:
    # A column added to the table and not to the row would never be read or written by
    # the call-event service (CallRow(**row) would fail on every event).
    assert [f.name for f in fields(CallRow)] != []
    assert {f.name for f in fields(CallRow)} == {column.key for column in Call.__table__.c}
