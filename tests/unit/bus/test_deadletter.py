"""Dead-letter stores: one contract (``StoreContract``) run against every store, then what is
specific to the in-memory store and to SQLite files.

``tests/integration/test_deadletter_postgres.py`` runs the same contract against PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from govbus.bus.base import DeadLetter
from govbus.bus.deadletter import (
    MIN_PREFIX,
    TABLE_NAME,
    DeadLetterStore,
    MemoryDeadLetterStore,
    SqlDeadLetterStore,
    open_dead_letters,
)
from govbus.envelope import Actor, Classification, Message
from govbus.errors import DeadLetterError, DeadLetterNotFoundError

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def message(n: int = 0) -> Message:
    return Message(type="task.do", sender="web", to="worker", payload={"n": n})


def letter(
    n: int = 0,
    *,
    id: str | None = None,
    at: datetime | None = None,
    msg: Message | None = None,
    address: str | None = "worker",
    cause: str = "handler raised",
) -> DeadLetter:
    kwargs = {} if id is None else {"id": id}
    return DeadLetter(
        message=msg or message(n),
        address=address,
        subscription="worker",
        attempts=5,
        cause=cause,
        at=at or T0 + timedelta(seconds=n),
        **kwargs,
    )


def rich_message() -> Message:
    """A message using every envelope field a replay must get back exactly."""
    return Message(
        type="portfolio.analyze",
        sender="web",
        to="analyzer",
        classification=Classification.SECRET,
        payload={"account": "A-1", "nested": {"list": [1, 2.5, None, True]}, "text": "é ☃ \n"},
        actor=Actor(subject="alice", roles=("advisor", "admin"), tenant="acme"),
        metadata={"traceparent": "00-abc-def-01", "reply_to": "inbox.web"},
        correlation_id="corr-1",
        causation_id="cause-1",
        created_at=datetime(2026, 11, 21, 9, 59, 58, 123456, tzinfo=UTC),
        deadline=datetime(2026, 11, 21, 10, 5, tzinfo=UTC),
        attempt=3,
        signature="hmac-sha256:abc",
    )


def journal_mode(path: Path) -> str | None:
    """The SQLite journal mode of the file at ``path``, or None when there is no file."""
    if not path.is_file():
        return None
    with sqlite3.connect(path) as conn:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    return str(mode)


MakeStore = Callable[[], DeadLetterStore]


class StoreContract:
    """What every :class:`DeadLetterStore` does. Subclasses provide ``make_store``."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, make_store: MakeStore) -> AsyncIterator[DeadLetterStore]:
        store = make_store()
        try:
            yield store
        finally:
            await store.close()

    async def test_is_a_dead_letter_store(self, store: DeadLetterStore) -> None:
        assert isinstance(store, DeadLetterStore)
        assert isinstance(store.where, str) and store.where

    async def test_empty(self, store: DeadLetterStore) -> None:
        assert await store.entries() == []
        assert await store.count() == 0

    async def test_entries_are_oldest_first_by_time_then_id(self, store: DeadLetterStore) -> None:
        same_time = T0 + timedelta(seconds=5)
        letters = [
            letter(2),
            letter(id="dl-b-000000", at=same_time),
            letter(0),
            letter(id="dl-a-000000", at=same_time),
            letter(1),
        ]
        for item in letters:
            await store.put(item)
        got = await store.entries()
        assert [e.id for e in got] == [
            letters[2].id,
            letters[4].id,
            letters[0].id,
            "dl-a-000000",
            "dl-b-000000",
        ]
        assert await store.count() == 5

    async def test_limit_gives_the_oldest(self, store: DeadLetterStore) -> None:
        letters = [letter(n) for n in range(5)]
        for item in reversed(letters):
            await store.put(item)
        assert [e.id for e in await store.entries(limit=2)] == [letters[0].id, letters[1].id]
        assert await store.entries(limit=0) == []
        assert len(await store.entries(limit=50)) == 5
        with pytest.raises(ValueError, match="negative"):
            await store.entries(limit=-1)

    async def test_get_by_exact_id(self, store: DeadLetterStore) -> None:
        first, second = letter(0), letter(1)
        await store.put(first)
        await store.put(second)
        assert await store.get(first.id) == first
        assert await store.get(second.id) == second

    async def test_get_by_unique_prefix(self, store: DeadLetterStore) -> None:
        await store.put(letter(0, id="abcdef-0001"))
        await store.put(letter(1, id="abcdxx-0002"))
        assert (await store.get("abcdef")).id == "abcdef-0001"
        assert (await store.get("abcdef-00")).id == "abcdef-0001"
        assert (await store.get("abcdxx-")).id == "abcdxx-0002"

    async def test_an_exact_id_wins_over_longer_ids_it_prefixes(
        self, store: DeadLetterStore
    ) -> None:
        await store.put(letter(0, id="abcdef"))
        await store.put(letter(1, id="abcdef-longer"))
        assert (await store.get("abcdef")).id == "abcdef"

    async def test_an_ambiguous_prefix_says_how_many_match(self, store: DeadLetterStore) -> None:
        for n in range(3):
            await store.put(letter(n, id=f"abcdef-000{n}"))
        with pytest.raises(DeadLetterNotFoundError, match="ambiguous") as info:
            await store.get("abcdef")
        assert "3 entries match" in info.value.message
        assert "'abcdef'" in info.value.message
        with pytest.raises(DeadLetterNotFoundError, match="3 entries match"):
            await store.remove("abcdef-000")
        assert await store.count() == 3

    async def test_a_prefix_shorter_than_the_minimum_is_refused(
        self, store: DeadLetterStore
    ) -> None:
        await store.put(letter(0, id="abcdef-0001"))
        short = "abcdef"[: MIN_PREFIX - 1]
        with pytest.raises(DeadLetterNotFoundError, match=f"at least {MIN_PREFIX} characters"):
            await store.get(short)
        with pytest.raises(DeadLetterNotFoundError, match=f"at least {MIN_PREFIX} characters"):
            await store.remove(short)
        assert await store.count() == 1

    async def test_prefix_matching_is_literal_and_case_sensitive(
        self, store: DeadLetterStore
    ) -> None:
        await store.put(letter(0, id="abcdef-0001"))
        with pytest.raises(DeadLetterNotFoundError):
            await store.get("ABCDEF")
        with pytest.raises(DeadLetterNotFoundError):
            await store.get("abcde%")
        with pytest.raises(DeadLetterNotFoundError):
            await store.get("abcde_")

    async def test_not_found_names_the_id_and_the_store(self, store: DeadLetterStore) -> None:
        await store.put(letter(0, id="abcdef-0001"))
        with pytest.raises(DeadLetterNotFoundError) as info:
            await store.get("zzzzzz-9999")
        assert info.value.message == f"no dead letter with id 'zzzzzz-9999' in {store.where}"
        assert info.value.code == "dead_letter_not_found"
        assert isinstance(info.value, DeadLetterError)

    async def test_remove_returns_the_letter_and_forgets_it(self, store: DeadLetterStore) -> None:
        keep, drop = letter(0), letter(1)
        await store.put(keep)
        await store.put(drop)
        assert await store.remove(drop.id) == drop
        assert await store.count() == 1
        assert await store.entries() == [keep]
        with pytest.raises(DeadLetterNotFoundError):
            await store.get(drop.id)
        with pytest.raises(DeadLetterNotFoundError):
            await store.remove(drop.id)

    async def test_remove_by_unique_prefix(self, store: DeadLetterStore) -> None:
        await store.put(letter(0, id="abcdef-0001"))
        await store.put(letter(1, id="abcdxx-0002"))
        removed = await store.remove("abcdef")
        assert removed.id == "abcdef-0001"
        assert [e.id for e in await store.entries()] == ["abcdxx-0002"]

    async def test_the_full_message_round_trips(self, store: DeadLetterStore) -> None:
        original = letter(
            0,
            msg=rich_message(),
            address=None,
            cause="ValueError: bad input\n  at line 2 — é ☃",
            at=datetime(2026, 11, 21, 10, 0, 1, 654321, tzinfo=UTC),
        )
        await store.put(original)
        for got in (await store.get(original.id), (await store.entries())[0]):
            assert got == original
            assert got.message == original.message
            assert got.message.to_json() == original.message.to_json()
            assert got.message.actor == original.message.actor
            assert got.message.classification is Classification.SECRET
            assert got.message.metadata == original.message.metadata
            assert got.message.deadline == original.message.deadline
            assert got.address is None
            assert got.at == original.at and got.at.tzinfo is UTC

    async def test_at_is_kept_in_utc(self, store: DeadLetterStore) -> None:
        plus_two = timezone(timedelta(hours=2))
        original = letter(0, at=datetime(2026, 11, 21, 12, 0, tzinfo=plus_two))
        await store.put(original)
        got = await store.get(original.id)
        assert got.at == T0
        assert got.at.tzinfo is UTC
        assert got.at.hour == 10

    async def test_a_naive_timestamp_is_refused(self, store: DeadLetterStore) -> None:
        with pytest.raises(DeadLetterError, match="without a timezone"):
            await store.put(letter(0, at=datetime(2026, 11, 21, 10, 0)))
        assert await store.count() == 0

    async def test_a_duplicate_id_is_refused(self, store: DeadLetterStore) -> None:
        first = letter(0)
        await store.put(first)
        with pytest.raises(DeadLetterError):
            await store.put(letter(1, id=first.id))
        assert await store.entries() == [first]

    async def test_close_is_idempotent_and_the_store_refuses_use_after(
        self, make_store: MakeStore
    ) -> None:
        store = make_store()
        await store.put(letter(0))
        await store.close()
        await store.close()
        with pytest.raises(DeadLetterError, match="closed"):
            await store.put(letter(1))
        with pytest.raises(DeadLetterError, match="closed"):
            await store.entries()


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> MakeStore:
        return MemoryDeadLetterStore

    async def test_where_is_memory(self) -> None:
        assert MemoryDeadLetterStore().where == "memory"

    async def test_keeps_the_newest_and_counts_all(self) -> None:
        store = MemoryDeadLetterStore(limit=3)
        letters = [letter(n) for n in range(5)]
        for item in letters:
            await store.put(item)
        assert await store.entries() == letters[2:]
        assert await store.count() == 3
        assert store.total == 5
        with pytest.raises(DeadLetterNotFoundError):
            await store.get(letters[0].id)
        await store.remove(letters[4].id)
        assert store.total == 5  # removing does not uncount

    @pytest.mark.parametrize("limit", [0, -1])
    def test_limit_must_be_positive(self, limit: int) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            MemoryDeadLetterStore(limit=limit)


@pytest.fixture
async def sql_stores() -> AsyncIterator[list[SqlDeadLetterStore]]:
    """Stores a test opens itself; all closed afterwards."""
    stores: list[SqlDeadLetterStore] = []
    yield stores
    for store in stores:
        await store.close()


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "dead" / "letters.db"

    @pytest.fixture
    def make_store(self, path: Path) -> MakeStore:
        return lambda: SqlDeadLetterStore(str(path))

    @pytest.fixture
    def open_store(
        self, sql_stores: list[SqlDeadLetterStore]
    ) -> Callable[[str], SqlDeadLetterStore]:
        def make(url: str) -> SqlDeadLetterStore:
            store = SqlDeadLetterStore(url)
            sql_stores.append(store)
            return store

        return make

    async def test_where_is_the_file(self, store: DeadLetterStore, path: Path) -> None:
        assert store.where == str(path)

    @pytest.mark.parametrize("form", ["{}", "sqlite:///{}"])
    async def test_a_relative_path_is_made_absolute_at_construction(
        self,
        form: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        open_store: Callable[[str], SqlDeadLetterStore],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        store = open_store(form.format("dl/letters.db"))
        assert store.where == str(tmp_path / "dl" / "letters.db")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        await store.put(letter(0))
        assert (tmp_path / "dl" / "letters.db").is_file()
        assert not (elsewhere / "dl").exists()

    async def test_reading_a_missing_file_creates_nothing(
        self, store: DeadLetterStore, path: Path
    ) -> None:
        assert await store.entries() == []
        assert await store.entries(limit=3) == []
        assert await store.count() == 0
        with pytest.raises(DeadLetterNotFoundError, match=re.escape(f"in {path}")):
            await store.get("abcdef-0001")
        with pytest.raises(DeadLetterNotFoundError, match=f"at least {MIN_PREFIX}"):
            await store.get("abc")
        with pytest.raises(DeadLetterNotFoundError):
            await store.remove("abcdef-0001")
        assert not path.parent.exists()

    async def test_put_creates_the_directory_the_file_and_a_wal_database(
        self, store: DeadLetterStore, path: Path
    ) -> None:
        await store.put(letter(0))
        assert journal_mode(path) == "wal"

    async def test_the_row_holds_the_envelope_json_and_utc_time(
        self, store: DeadLetterStore, path: Path
    ) -> None:
        original = letter(0, msg=rich_message())
        await store.put(original)
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(f"SELECT * FROM {TABLE_NAME}").fetchone()
            indexed = {
                info[2]
                for (name,) in conn.execute(
                    f"SELECT name FROM sqlite_master WHERE type = 'index' "
                    f"AND tbl_name = '{TABLE_NAME}'"
                )
                for info in conn.execute(f"PRAGMA index_info('{name}')")
            }
        conn.close()
        assert row["id"] == original.id
        assert row["message_id"] == original.message.id
        assert row["msg_type"] == "portfolio.analyze"
        assert row["attempts"] == 5
        assert Message.from_json(row["message"]) == original.message
        assert row["at"].startswith("2026-11-21 10:00:00")
        assert {"at", "message_id"} <= indexed

    async def test_an_existing_database_without_the_table_reads_as_empty(
        self, store: DeadLetterStore, path: Path
    ) -> None:
        path.parent.mkdir()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE other (x INTEGER)")
        conn.close()
        assert await store.count() == 0
        assert await store.entries() == []
        with pytest.raises(DeadLetterNotFoundError):
            await store.get("abcdef-0001")
        with sqlite3.connect(path) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        conn.close()
        assert TABLE_NAME not in tables

    @pytest.mark.parametrize(
        "url",
        [
            "sqlite://",
            "sqlite:///:memory:",
            ":memory:",
            "sqlite:///file::memory:?uri=true",
            "sqlite:///letters.db?mode=memory&uri=true",
        ],
    )
    def test_an_in_memory_sqlite_url_is_refused(self, url: str) -> None:
        with pytest.raises(DeadLetterError, match="in-memory SQLite"):
            SqlDeadLetterStore(url)

    @pytest.mark.parametrize(
        "url", ["bad url://user:s3cret@host/db", "://nothing", "postgresql://u:s3cret@h:abc/db"]
    )
    def test_an_unparsable_url_is_refused_naming_it_without_the_password(self, url: str) -> None:
        with pytest.raises(DeadLetterError, match="cannot parse dead-letter store URL") as info:
            SqlDeadLetterStore(url)
        assert "s3cret" not in info.value.message
        assert url.replace("s3cret", "***") in info.value.message

    def test_an_unknown_database_is_refused(self) -> None:
        with pytest.raises(DeadLetterError, match="nosuchdb://host/db"):
            SqlDeadLetterStore("nosuchdb://host/db")

    def test_an_empty_url_is_refused(self) -> None:
        with pytest.raises(DeadLetterError, match="empty"):
            SqlDeadLetterStore("  ")

    async def test_a_directory_that_cannot_be_created_is_named(
        self, tmp_path: Path, open_store: Callable[[str], SqlDeadLetterStore]
    ) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        target = blocker / "sub" / "letters.db"
        store = open_store(str(target))
        assert await store.count() == 0
        with pytest.raises(DeadLetterError, match=re.escape(str(target))) as info:
            await store.put(letter(0))
        assert "directory" in info.value.message
        assert blocker.read_text() == "not a directory"

    async def test_a_file_that_is_not_a_database_is_a_dead_letter_error(
        self, tmp_path: Path, open_store: Callable[[str], SqlDeadLetterStore]
    ) -> None:
        target = tmp_path / "garbage.db"
        target.write_bytes(b"this is not a database, " * 100)
        store = open_store(str(target))
        item = letter(0)
        with pytest.raises(
            DeadLetterError, match=re.escape(f"cannot write dead letter {item.id} to")
        ):
            await store.put(item)
        with pytest.raises(
            DeadLetterError, match=re.escape(f"cannot count dead letters in {target}")
        ):
            await store.count()

    async def test_a_second_store_on_the_same_file_sees_the_first_ones_letters(
        self,
        path: Path,
        store: DeadLetterStore,
        open_store: Callable[[str], SqlDeadLetterStore],
    ) -> None:
        reader = open_store(str(path))
        assert await reader.count() == 0  # before the file exists
        first, second = letter(0), letter(1)
        await store.put(first)
        await store.put(second)
        assert await reader.entries() == [first, second]
        assert await reader.remove(first.id) == first
        assert await store.entries() == [second]

    async def test_another_process_reads_while_this_one_holds_the_store(
        self, path: Path, store: DeadLetterStore
    ) -> None:
        letters = [letter(n) for n in range(3)]
        for item in letters:
            await store.put(item)
        script = textwrap.dedent(
            """
            import asyncio, sys
            from govbus.bus.deadletter import SqlDeadLetterStore

            async def main() -> None:
                store = SqlDeadLetterStore(sys.argv[1])
                try:
                    print(await store.count())
                    for letter in await store.entries():
                        print(letter.id, letter.message.payload["n"])
                finally:
                    await store.close()

            asyncio.run(main())
            """
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert lines == ["3", *(f"{item.id} {n}" for n, item in enumerate(letters))]
        await store.put(letter(3))  # the writer goes on after the reader
        assert await store.count() == 4

    async def test_an_unreadable_stored_envelope_is_a_dead_letter_error(
        self, store: DeadLetterStore, path: Path
    ) -> None:
        item = letter(0)
        await store.put(item)
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE {TABLE_NAME} SET message = '{{not json'")
        conn.close()
        with pytest.raises(
            DeadLetterError, match=rf"dead letter {re.escape(item.id)} in .* cannot be read"
        ):
            await store.get(item.id)

    async def test_nul_characters_in_text_fields_are_replaced(self, store: DeadLetterStore) -> None:
        item = letter(0, cause="bad\x00byte")
        await store.put(item)
        assert (await store.get(item.id)).cause == "bad\ufffdbyte"

    async def test_an_overlong_id_is_refused(self, store: DeadLetterStore) -> None:
        with pytest.raises(DeadLetterError, match="longer than 40 characters"):
            await store.put(letter(0, id="x" * 41))


async def test_a_postgresql_url_is_described_without_its_password(
    sql_stores: list[SqlDeadLetterStore],
) -> None:
    pytest.importorskip("psycopg")
    store = SqlDeadLetterStore("postgresql://app:s3cret@db.example:5432/prod")
    sql_stores.append(store)
    assert store.where == "postgresql+psycopg://app:***@db.example:5432/prod"


@pytest.mark.parametrize("url", ["memory", "memory://"])
async def test_open_dead_letters_memory(url: str) -> None:
    store = open_dead_letters(url)
    assert isinstance(store, MemoryDeadLetterStore)
    await store.close()


async def test_open_dead_letters_sqlite(tmp_path: Path) -> None:
    store = open_dead_letters(str(tmp_path / "dl.db"))
    assert isinstance(store, SqlDeadLetterStore)
    assert store.where == str(tmp_path / "dl.db")
    await store.close()
