"""Property: audit events survive the trip to the writer process exactly (timestamps too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from govbus.audit import AuditEvent
from govbus.audit.process import decode_batch, encode_batch

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]
)
stamps = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 31)),
    zones,
)
events = st.builds(
    AuditEvent,
    kind=st.sampled_from(["decision", "delivery", "fallback"]),
    ts=stamps,
    outcome=st.text(max_size=12),
    message_id=st.none() | st.text(max_size=40),
    data=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=20), st.integers(0, 2**63 - 1))
def test_encode_decode_is_exact(batch: list[AuditEvent], batch_id: int) -> None:
    got_id, decoded = decode_batch(encode_batch(batch_id, batch))
    assert got_id == batch_id
    assert decoded == batch
    for sent, got in zip(batch, decoded, strict=True):
        assert got.ts == sent.ts  # aware timestamps compare by instant, to the microsecond
        assert (got.ts.tzinfo is None) == (sent.ts.tzinfo is None)
