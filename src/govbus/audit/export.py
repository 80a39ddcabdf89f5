"""Exporting the audit log for auditors and regulators, and re-verifying an export file.

:func:`export_url` streams every field of every record (or of the records a filter selects) in
chain order, as JSON Lines or CSV, in constant memory. A JSONL export starts with a manifest line
that carries what verification needs besides the records: each chain's head and checkpoint, read
in the same snapshot as the records, and the filters used. :func:`verify_export` checks an export
file with the same rules as ``govbus audit verify``:

* a complete JSONL export (no filter) is verified exactly like the database: every hash, every
  link, every chain from record 1 (or its checkpoint) up to its head, and the checkpoints
  against the newest ``audit_prune`` record;
* a filtered JSONL export, and any CSV export, is checked record by record (each record's hash
  must recompute from its fields) and, where two records of a chain are consecutive, link by
  link. What is not in the file cannot be checked, and the result says so.

CSV cannot tell an empty text from a missing one (both are an empty cell); verifying a CSV
record tries the missing value first, then the empty text, per empty cell, and accepts the
record only if one reading reproduces its hash.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from govbus.audit.base import GENESIS_HASH, AuditCheckpoint, VerifyReport
from govbus.audit.chain import RECORD_COLUMNS, ChainVerifier, format_ts, row_problem
from govbus.audit.database import (
    audit_records,
    db_error,
    describe_url,
    normalize_url,
    read_checkpoints,
    read_heads,
    reading_engine,
    require_tables,
    select_records,
    snapshot,
    stream_rows,
)
from govbus.errors import AuditError

__all__ = [
    "EXPORT_FORMATS",
    "ExportFilter",
    "ExportSummary",
    "ExportVerification",
    "export_url",
    "record_json",
    "verify_export",
]

ExportFormat = Literal["jsonl", "csv"]
EXPORT_FORMATS: Final[tuple[str, ...]] = ("jsonl", "csv")
#: The manifest's marker key and format version (the first line of a JSONL export).
MANIFEST_KEY: Final = "govbus_audit_export"
MANIFEST_VERSION: Final = 1
_BATCH: Final = 5_000
#: Columns whose empty CSV cell may mean a missing value or an empty text.
_NULLABLE_INDEXES: Final = tuple(
    RECORD_COLUMNS.index(name)
    for name in ("message_id", "correlation_id", "msg_type", "sender", "recipient", "policy_sha256")
)


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Which records to export; every field None exports everything.

    Attributes:
        since: records at or after this time.
        until: records before this time.
        msg_type: a glob on the message type (``advice.*``; ``*`` and ``?``, case-sensitive).
        agent: records this agent sent or received.
        kind: records of this kind (``decision``, ``delivery``, ``admin``, ...).
    """

    since: datetime | None = None
    until: datetime | None = None
    msg_type: str | None = None
    agent: str | None = None
    kind: str | None = None

    @property
    def empty(self) -> bool:
        return all(
            value is None
            for value in (self.since, self.until, self.msg_type, self.agent, self.kind)
        )

    def as_dict(self) -> dict[str, str | None]:
        return {
            "since": format_ts(self.since) if self.since is not None else None,
            "until": format_ts(self.until) if self.until is not None else None,
            "type": self.msg_type,
            "agent": self.agent,
            "kind": self.kind,
        }

    def where(self, stmt: sa.Select[Any]) -> sa.Select[Any]:
        c = audit_records.c
        if self.since is not None:
            stmt = stmt.where(c.ts >= format_ts(self.since))
        if self.until is not None:
            stmt = stmt.where(c.ts < format_ts(self.until))
        if self.kind is not None:
            stmt = stmt.where(c.kind == self.kind)
        if self.agent is not None:
            stmt = stmt.where(sa.or_(c.sender == self.agent, c.recipient == self.agent))
        if self.msg_type is not None:
            # LIKE narrows it down in the database (case-insensitive on SQLite); the exact,
            # case-sensitive glob is applied to each row as it streams.
            stmt = stmt.where(c.msg_type.like(_glob_to_like(self.msg_type), escape="\\"))
        return stmt


def _glob_to_like(glob: str) -> str:
    out = []
    for char in glob:
        if char in "%_\\":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_url` wrote."""

    where: str
    format: str
    records: int
    chains: int
    complete: bool


def export_url(
    url: str | URL,
    out: IO[bytes],
    *,
    format: ExportFormat = "jsonl",
    filters: ExportFilter | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    now: datetime | None = None,
) -> ExportSummary:
    """Write the records at ``url`` to ``out`` as JSON Lines or CSV, streaming.

    Every field of each record, in chain order (node, then seq), read in one snapshot: ``node,
    seq, ts, kind, outcome, message_id, correlation_id, msg_type, sender, recipient,
    policy_sha256, data, prev_hash, hash``. In JSONL ``data`` is the JSON object itself, the
    first line is the manifest (``{"govbus_audit_export": 1, "heads": ..., "checkpoints":
    ..., "filters": ..., "complete": ...}``) and each further line is one record. In CSV the
    first row names the columns, ``data`` is its JSON text and a missing value is an empty cell.

    Args:
        url: a SQLAlchemy URL or a SQLite file path.
        out: a binary stream (a file opened ``"wb"``, ``sys.stdout.buffer``).
        format: ``"jsonl"`` or ``"csv"``.
        filters: which records; None for all (a complete export).
        progress: called as ``progress(done, total)`` after each batch; ``total`` is counted
            first (with the filters) in the same snapshot.
        now: the export time written to the manifest (tests); default the clock.

    Raises:
        AuditError: an unknown format, no database or audit tables at ``url``, or a database
            error.
    """
    if format not in EXPORT_FORMATS:
        raise AuditError(f"unknown export format {format!r}; use one of: jsonl, csv")
    chosen = filters or ExportFilter()
    target = normalize_url(url)
    where = describe_url(target)
    engine = reading_engine(target)
    records = 0
    chains: set[str] = set()
    try:
        require_tables(engine, where)
        with snapshot(engine) as (conn, _):
            heads = read_heads(conn, None)
            checkpoints = read_checkpoints(conn, None) or {}
            stmt = chosen.where(select_records())
            total: int | None = None
            if progress is not None:
                counted = sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
                total = int(conn.execute(counted).scalar_one())
                progress(0, total)
            glob = chosen.msg_type
            writer = _RowWriter(out, format)
            if format == "jsonl":
                writer.manifest(_manifest(where, chosen, heads, checkpoints, now))
            scanned = 0
            for rows in stream_rows(conn, stmt, _BATCH):
                scanned += len(rows)
                if glob is not None:
                    rows = [r for r in rows if r[7] is not None and fnmatch.fnmatchcase(r[7], glob)]
                writer.write(rows)
                records += len(rows)
                chains.update(r[0] for r in rows)
                if progress is not None:
                    progress(scanned, total)
            writer.close()
    except SQLAlchemyError as exc:
        raise db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()
    return ExportSummary(where, format, records, len(chains), chosen.empty)


def _manifest(
    where: str,
    filters: ExportFilter,
    heads: dict[str, tuple[int, str]],
    checkpoints: dict[str, AuditCheckpoint],
    now: datetime | None,
) -> dict[str, Any]:
    return {
        MANIFEST_KEY: MANIFEST_VERSION,
        "exported_at": format_ts(now or datetime.now(UTC)),
        "source": where,
        "order": ["node", "seq"],
        "complete": filters.empty,
        "filters": filters.as_dict(),
        "hash": "sha256(prev_hash + canonical JSON of the record without hash)",
        "heads": {node: {"seq": seq, "hash": digest} for node, (seq, digest) in heads.items()},
        "checkpoints": {
            node: {
                "seq": c.seq,
                "hash": c.hash,
                "ts": c.ts,
                "generation": c.generation,
                "pruned_at": c.pruned_at,
            }
            for node, c in checkpoints.items()
        },
    }


class _RowWriter:
    """Rows out as JSONL lines or CSV rows, onto a binary stream left open afterwards."""

    def __init__(self, out: IO[bytes], format: ExportFormat) -> None:
        self._out = out
        self._text: io.TextIOWrapper | None = None
        if format == "csv":
            self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            self._csv = csv.writer(self._text, lineterminator="\r\n")
            self._csv.writerow(RECORD_COLUMNS)

    def manifest(self, manifest: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(manifest) + b"\n")

    def write(self, rows: list[Any]) -> None:
        if self._text is None:
            self._out.write(b"".join(map(_jsonl_line, rows)))
        else:
            self._csv.writerows(map(_csv_row, rows))

    def close(self) -> None:
        if self._text is not None:
            self._text.flush()
            self._text.detach()  # the caller's stream stays open


def record_json(row: Sequence[Any]) -> bytes:
    """A storage row (a tuple in :data:`RECORD_COLUMNS` order) as a JSON object: every field,
    ``data`` as the JSON it holds, byte for byte as stored."""
    fields = dict(zip(RECORD_COLUMNS, row, strict=True))
    data = fields["data"]
    try:
        orjson.loads(data)
        fields["data"] = orjson.Fragment(data)  # the stored canonical text, byte for byte
    except (orjson.JSONDecodeError, TypeError):
        pass  # not JSON (changed after writing): exported as the text it is; verify names it
    return orjson.dumps(fields)


def _jsonl_line(row: Sequence[Any]) -> bytes:
    return record_json(row) + b"\n"


def _csv_row(row: Sequence[Any]) -> list[Any]:
    return ["" if value is None else value for value in row]


# --------------------------------------------------------------------------------------------
# Verifying an export file


@dataclass(frozen=True, slots=True)
class ExportVerification:
    """The result of :func:`verify_export`."""

    report: VerifyReport
    format: str
    #: True when the file was checked as completely as the database would be.
    complete: bool
    #: What the check could not cover, for people.
    notes: list[str] = field(default_factory=list)


def verify_export(
    path: str | Path, *, progress: Callable[[int, int], None] | None = None
) -> ExportVerification:
    """Verify an export file written by :func:`export_url` (JSONL or CSV, told by its content).

    Args:
        path: the export file.
        progress: called as ``progress(bytes_read, file_size)`` now and then.

    Raises:
        AuditError: the file cannot be read or is not an export.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        handle = file.open("rb")
    except OSError as exc:
        raise AuditError(f"cannot read export file {file}: {exc.strerror or exc}") from exc
    with handle:
        first = handle.readline()
        if first.lstrip().startswith(b"{"):
            try:
                manifest = orjson.loads(first)
            except orjson.JSONDecodeError as exc:
                raise AuditError(f"{file}:1: not a govbus audit export manifest ({exc})") from None
            if not isinstance(manifest, dict) or manifest.get(MANIFEST_KEY) != MANIFEST_VERSION:
                raise AuditError(
                    f"{file}:1: not a govbus audit export manifest (no "
                    f'"{MANIFEST_KEY}": {MANIFEST_VERSION})'
                )
            return _verify_jsonl(file, handle, manifest, size, progress)
        header = first.decode("utf-8", errors="replace").strip().split(",")
        if header != list(RECORD_COLUMNS):
            raise AuditError(
                f"{file}:1: not a govbus audit export (neither a JSONL manifest nor the CSV "
                f"header {','.join(RECORD_COLUMNS)})"
            )
        return _verify_csv(file, handle, size, progress)


def _verify_jsonl(
    file: Path,
    handle: IO[bytes],
    manifest: dict[str, Any],
    size: int,
    progress: Callable[[int, int], None] | None,
) -> ExportVerification:
    complete = manifest.get("complete") is True
    try:
        heads = {n: (int(h["seq"]), str(h["hash"])) for n, h in manifest["heads"].items()}
        checkpoints = {
            n: AuditCheckpoint(
                node=n,
                seq=int(c["seq"]),
                hash=str(c["hash"]),
                ts=str(c["ts"]),
                generation=int(c["generation"]),
                pruned_at=str(c["pruned_at"]),
            )
            for n, c in manifest["checkpoints"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuditError(
            f"{file}:1: the manifest's heads or checkpoints are malformed ({exc})"
        ) from None
    checker: ChainVerifier | _LooseVerifier = (
        ChainVerifier(heads, checkpoints, attest=True) if complete else _LooseVerifier(checkpoints)
    )
    done = len(manifest)  # roughly; only for progress
    number = 1
    for lines in _batches(handle, 2_000):
        rows = []
        for line in lines:
            number += 1
            done += len(line)
            if not line.strip():
                continue
            try:
                rows.append(_row_from_json(orjson.loads(line)))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise AuditError(f"{file}:{number}: not an audit record ({exc})") from None
        ok = checker.add_rows(rows)
        if progress is not None:
            progress(min(done, size), size)
        if not ok:
            break
    report = checker.finish()
    notes = [] if complete else [_FILTERED_NOTE]
    return ExportVerification(report, "jsonl", complete, notes)


_FILTERED_NOTE: Final = (
    "filtered export: each record's hash was recomputed, and records of a chain were linked "
    "where consecutive; records left out by the filter, a deleted tail and the checkpoints "
    "cannot be checked from this file"
)
_CSV_NOTE: Final = (
    "CSV export: each record's hash was recomputed, and records of a chain were linked where "
    "consecutive; CSV carries no heads or checkpoints, so a deleted tail or first records "
    "cannot be told from this file (export JSONL for that)"
)


def _row_from_json(obj: dict[str, Any]) -> tuple[Any, ...]:
    data = obj["data"]
    # The canonical text of data, as stored (a string here means the stored text was not JSON).
    text = data if isinstance(data, str) else orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return tuple(obj[name] if name != "data" else text for name in RECORD_COLUMNS)


def _batches(handle: IO[bytes], size: int) -> Iterator[list[bytes]]:
    while lines := list(itertools.islice(handle, size)):
        yield lines


def _verify_csv(
    file: Path, handle: IO[bytes], size: int, progress: Callable[[int, int], None] | None
) -> ExportVerification:
    checker = _LooseVerifier({})

    def report() -> None:
        if progress is not None:
            progress(min(handle.tell(), size), size)

    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        _check_csv(file, text, checker, report)
    finally:
        text.detach()  # the caller closes the file
    return ExportVerification(checker.finish(), "csv", False, [_CSV_NOTE])


def _check_csv(
    file: Path, text: io.TextIOWrapper, checker: _LooseVerifier, report: Callable[[], None]
) -> None:
    reader = csv.reader(text)
    columns = len(RECORD_COLUMNS)
    seen = 0
    for values in reader:
        if not values:
            continue
        if len(values) != columns:
            raise AuditError(f"{file}:{reader.line_num}: {len(values)} columns, expected {columns}")
        try:
            seq = int(values[1])
        except ValueError:
            raise AuditError(
                f"{file}:{reader.line_num}: seq {values[1]!r} is not a number"
            ) from None
        row: list[Any] = list(values)
        row[1] = seq
        if not checker.add_rows([_csv_reading(row)]):
            return
        seen += 1
        if seen % 5_000 == 0:
            report()


def _csv_reading(row: list[Any]) -> tuple[Any, ...]:
    """The reading of a CSV row (empty cells as missing or empty) that reproduces its hash,
    or the all-missing reading when none does (so the record is reported as changed)."""
    empty = [i for i in _NULLABLE_INDEXES if row[i] == ""]
    base = list(row)
    for index in empty:
        base[index] = None
    if not empty or row_problem(base) is None:
        return tuple(base)
    for chosen in range(1, 1 << len(empty)):
        candidate = list(base)
        for bit, index in enumerate(empty):
            if chosen >> bit & 1:
                candidate[index] = ""
        if row_problem(candidate) is None:
            return tuple(candidate)
    return tuple(base)


class _LooseVerifier:
    """Verification of a partial export: each record's hash, and the link between records of a
    chain where they are consecutive (gaps are allowed: the filter left records out)."""

    def __init__(self, checkpoints: dict[str, AuditCheckpoint]) -> None:
        self._checkpoints = checkpoints
        self._last: dict[str, tuple[int, str]] = {}
        self._counts: dict[str, int] = {}
        self._records = 0
        self._broken: tuple[str, int, str] | None = None

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> bool:
        for row in rows:
            if self._broken is not None:
                return False
            problem = self._problem(row)
            if problem is not None:
                node, seq = row[0], row[1]
                self._broken = (node, seq, f"record {seq} of chain {node!r}: {problem}")
                return False
            node, seq = row[0], row[1]
            self._last[node] = (seq, row[13])
            self._counts[node] = self._counts.get(node, 0) + 1
            self._records += 1
        return True

    def _problem(self, row: Sequence[Any]) -> str | None:
        problem = row_problem(row)
        if problem is not None:
            return problem
        node, seq, prev = row[0], row[1], row[12]
        last = self._last.get(node)
        if last is None:
            checkpoint = self._checkpoints.get(node)
            if seq == 1 and prev != GENESIS_HASH:
                return "prev_hash does not match the genesis hash"
            if checkpoint is not None and seq == checkpoint.seq + 1 and prev != checkpoint.hash:
                return (
                    f"prev_hash does not match its checkpoint (the hash of pruned record "
                    f"{checkpoint.seq}); the checkpoint or a record was changed"
                )
            return None
        last_seq, last_hash = last
        if seq <= last_seq:
            return f"found after record {last_seq} (duplicated or reordered?)"
        if seq == last_seq + 1 and prev != last_hash:
            return (
                f"prev_hash does not match the hash of record {last_seq} (a record before it "
                "removed, replaced or reordered?)"
            )
        return None

    def finish(self) -> VerifyReport:
        pruned = {node: c.seq for node, c in self._checkpoints.items()}
        if self._broken is None:
            return VerifyReport(ok=True, records=self._records, chains=self._counts, pruned=pruned)
        node, seq, problem = self._broken
        return VerifyReport(
            ok=False,
            records=self._records,
            chains=self._counts,
            node=node,
            seq=seq,
            problem=problem,
            pruned=pruned,
        )
