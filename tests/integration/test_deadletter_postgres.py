"""SqlDeadLetterStore against a real PostgreSQL server: the same contract as the in-memory and
SQLite stores, plus what is specific to a server (time zones, unreachable hosts, NUL).

Every test starts from a dropped ``govbus_dead_letters`` table and drops it afterwards: this is
the test database, the tests run one at a time, and the contract's ordering and counting tests
need a table holding only their own letters.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import pytest
import sqlalchemy as sa

from govbus.bus.deadletter import TABLE_NAME, DeadLetterStore, SqlDeadLetterStore
from govbus.errors import DeadLetterError
from tests.unit.bus.test_deadletter import T0, MakeStore, StoreContract, letter

from .conftest import POSTGRES_URL as URL

pytestmark = pytest.mark.postgres


def drop_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE_NAME}"))


@pytest.fixture
def fresh_table(engine: sa.Engine) -> Iterator[None]:
    drop_table(engine)
    yield
    drop_table(engine)


@pytest.fixture
async def stores(fresh_table: None) -> AsyncIterator[list[SqlDeadLetterStore]]:
    """Stores a test opens itself; all closed afterwards."""
    opened: list[SqlDeadLetterStore] = []
    yield opened
    for store in opened:
        await store.close()


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make_store(self, fresh_table: None) -> MakeStore:
        return lambda: SqlDeadLetterStore(URL)

    async def test_where_hides_the_password(self, store: DeadLetterStore) -> None:
        assert store.where == sa.make_url(URL).render_as_string(hide_password=True)
        assert store.where.startswith("postgresql+psycopg://")

    async def test_reading_before_the_table_exists_creates_nothing(
        self, store: DeadLetterStore, engine: sa.Engine
    ) -> None:
        assert await store.entries() == []
        assert await store.count() == 0
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table(TABLE_NAME)
        await store.put(letter(0))
        with engine.connect() as conn:
            assert sa.inspect(conn).has_table(TABLE_NAME)

    async def test_the_schema(self, store: DeadLetterStore, engine: sa.Engine) -> None:
        await store.put(letter(0))
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            columns = {c["name"]: c for c in inspector.get_columns(TABLE_NAME)}
            indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(TABLE_NAME)}
            primary = inspector.get_pk_constraint(TABLE_NAME)["constrained_columns"]
        assert primary == ["id"]
        assert isinstance(columns["at"]["type"], sa.DateTime)
        assert columns["at"]["type"].timezone is True
        assert columns["address"]["nullable"] is True
        assert isinstance(columns["message"]["type"], sa.Text)
        assert {("at",), ("message_id",)} <= indexed

    async def test_time_comes_back_in_utc_whatever_the_session_time_zone(
        self, stores: list[SqlDeadLetterStore]
    ) -> None:
        tokyo = SqlDeadLetterStore(with_query(URL, "options=-c%20timezone%3DAsia/Tokyo"))
        stores.append(tokyo)
        item = letter(0)
        await tokyo.put(item)
        got = await tokyo.get(item.id)
        assert got.at == T0
        assert got.at.tzinfo is UTC

    async def test_a_second_store_sees_the_first_ones_letters(
        self, stores: list[SqlDeadLetterStore]
    ) -> None:
        writer, reader = SqlDeadLetterStore(URL), SqlDeadLetterStore(URL)
        stores.extend([writer, reader])
        assert await reader.count() == 0
        item = letter(0)
        await writer.put(item)
        assert await reader.entries() == [item]
        assert await reader.remove(item.id) == item
        assert await writer.count() == 0

    async def test_two_stores_creating_the_table_at_once_both_succeed(
        self, stores: list[SqlDeadLetterStore]
    ) -> None:
        first, second = SqlDeadLetterStore(URL), SqlDeadLetterStore(URL)
        stores.extend([first, second])
        await asyncio.gather(first.put(letter(0)), second.put(letter(1)))
        assert await first.count() == 2

    async def test_nul_characters_in_text_fields_are_replaced_not_refused(
        self, store: DeadLetterStore
    ) -> None:
        item = letter(0, cause="bad\x00byte", address="inbox\x00x")
        await store.put(item)
        got = await store.get(item.id)
        assert got.cause == "bad\ufffdbyte"
        assert got.address == "inbox\ufffdx"
        assert got.message == item.message


async def test_an_unreachable_server_is_a_dead_letter_error_naming_the_host() -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2"
    store = SqlDeadLetterStore(url)
    item = letter(0)
    started = time.monotonic()
    try:
        with pytest.raises(DeadLetterError) as put_error:
            await store.put(item)
        with pytest.raises(DeadLetterError) as count_error:
            await store.count()
    finally:
        await store.close()
    assert time.monotonic() - started < 10
    message = put_error.value.message
    assert message.startswith(f"cannot write dead letter {item.id} to postgresql+psycopg://")
    assert "127.0.0.1:1" in message
    assert "s3cret" not in message and "s3cret" not in count_error.value.message
    assert "cannot count dead letters in" in count_error.value.message


async def test_an_unroutable_host_times_out_instead_of_hanging() -> None:
    # 10.255.255.1 is private and normally unrouted: the connection attempt just waits.
    url = "postgresql://postgres@10.255.255.1:5432/test?connect_timeout=1"
    store = SqlDeadLetterStore(url)
    started = time.monotonic()
    try:
        with pytest.raises(DeadLetterError, match=re.escape("10.255.255.1")):
            await store.count()
    finally:
        await store.close()
    assert time.monotonic() - started < 10
