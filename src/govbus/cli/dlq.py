"""``govbus dlq list|show|replay|drop``: the dead-letter queue, for operators.

The store is read directly (SQLite file or PostgreSQL by URL; default ``.govbus/dlq.db``, where
an app with the default audit log keeps its dead letters). ``replay`` loads the app
(``--app MODULE:FACTORY``, default the example; the factory takes ``bus=`` and ``audit=`` as
for drills) and sends each entry through governance again, audited in ``--audit``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from govbus.bus import DeadLetter, DeadLetterStore, InMemoryBus, open_dead_letters
from govbus.cli.redteam import _stdout_console
from govbus.envelope import FALLBACK_CAUSE, Message
from govbus.orchestrator import load_app, outcome
from govbus.orchestrator.app import default_dlq_url
from govbus.orchestrator.config import DEFAULT_AUDIT_URL
from govbus.orchestrator.core import PARTIAL

DEFAULT_DLQ_URL = default_dlq_url(DEFAULT_AUDIT_URL)


def _summary(letter: DeadLetter) -> dict[str, Any]:
    message = letter.message
    return {
        "id": letter.id,
        "at": letter.at.isoformat(),
        "agent": letter.address,
        "type": message.type,
        "message_id": message.id,
        "from": message.sender,
        "attempts": letter.attempts,
        "cause": letter.cause,
    }


async def _with_store(url: str, work: Any) -> Any:
    store = open_dead_letters(url)
    try:
        return await work(store)
    finally:
        await store.close()


def dlq_list(url: str | None, *, output: str = "table", limit: int | None = None) -> int:
    where = url or DEFAULT_DLQ_URL

    async def work(store: DeadLetterStore) -> tuple[list[DeadLetter], int]:
        return await store.entries(limit=limit), await store.count()

    letters, total = asyncio.run(_with_store(where, work))
    if output == "json":
        print(json.dumps({"store": where, "total": total,
                          "entries": [_summary(x) for x in letters]}, indent=2))  # fmt: skip
        return 0
    console = _stdout_console()
    if not letters:
        console.print(f"no dead letters in {escape(where)}")
        return 0
    table = Table(
        box=box.SIMPLE_HEAD, title=f"dead letters in {escape(where)}", title_justify="left"
    )
    for column in ("id", "at (UTC)", "agent", "type", "tries", "cause"):
        table.add_column(column, no_wrap=True)
    for letter in letters:
        table.add_row(
            letter.id,
            letter.at.strftime("%m-%d %H:%M:%S"),
            escape(str(letter.address)),
            escape(letter.message.type),
            str(letter.attempts),
            escape(letter.cause.partition(": ")[0]),
        )
    console.print(table)
    shown = f"{len(letters)} of {total}" if total > len(letters) else str(total)
    console.print(f"{shown} dead letter(s); `govbus dlq show ID` for one, `replay ID` to retry")
    return 0


def dlq_show(url: str | None, entry: str) -> int:
    where = url or DEFAULT_DLQ_URL

    async def work(store: DeadLetterStore) -> DeadLetter:
        return await store.get(entry)

    letter = asyncio.run(_with_store(where, work))
    document = _summary(letter) | {
        "subscription": letter.subscription,
        "message": json.loads(letter.message.to_json()),
    }
    print(json.dumps(document, indent=2))
    return 0


def dlq_drop(url: str | None, entries: Sequence[str]) -> int:
    where = url or DEFAULT_DLQ_URL

    async def work(store: DeadLetterStore) -> list[DeadLetter]:
        return [await store.remove(e) for e in entries]

    for letter in asyncio.run(_with_store(where, work)):
        print(f"dropped {letter.id} ({letter.message.type} for {letter.address})")
    return 0


def dlq_replay(
    url: str | None,
    entries: Sequence[str],
    *,
    replay_all: bool = False,
    app_ref: str | None = None,
    timeout: float = 30.0,
    by: str | None = None,
    audit: str | None = None,
) -> int:
    """Replay entries through the app's governance; exit 1 if any answer is not a reply."""
    where = url or DEFAULT_DLQ_URL
    who = by or os.environ.get("USER") or "cli"

    async def work(store: DeadLetterStore) -> int:
        chosen = await store.entries() if replay_all else [await store.get(e) for e in entries]
        if not chosen:
            print(f"nothing to replay in {where}")
            return 0
        # The app's bus keeps its dead letters in the same store: a replay that fails again
        # comes back to it as a new entry. Same factory contract as drills: bus= and audit=.
        app = load_app(
            app_ref or "govbus.examples.finance:create_app",
            bus=InMemoryBus(dead_letters=store),
            audit=audit or DEFAULT_AUDIT_URL,
        )
        bad = 0
        async with app:
            for letter in chosen:
                reply = await app.replay(letter, timeout=timeout, by=who, store=store)
                bad += outcome(reply) in ("denied", "failed")
                what = f"{letter.message.type} for {letter.address}"
                print(f"replayed {letter.id} ({what}): {_outcome(reply)}")
        return 1 if bad else 0

    return int(asyncio.run(_with_store(where, work)))


def _outcome(reply: Message) -> str:
    ended = outcome(reply)
    if ended == "denied":
        return f"denied by {reply.payload.get('check')} ({reply.payload.get('code')})"
    if ended == "failed":
        return (
            f"failed ({reply.payload.get('code')}); a new dead letter holds it if the agent gave up"
        )
    if ended == "degraded":
        cause = reply.metadata.get(FALLBACK_CAUSE)
        missing = reply.metadata.get(PARTIAL, "?")
        return f"degraded ({f'fallback, cause {cause}' if cause else f'a part missing: {missing}'})"
    return "ok"
