"""Exporting records as JSONL and CSV, and re-verifying an export file without the database."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from govbus.audit import verify_url
from govbus.audit.chain import RECORD_COLUMNS
from govbus.audit.export import ExportFilter, export_url, verify_export
from govbus.audit.prune import prune_url
from govbus.errors import AuditError

from .chains import HOUR, T0, event, query, write_chain


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 12)
    write_chain(path, "b", [event(i, sender="" if i == 1 else "intake") for i in range(5)])
    return path


def export(db: Path, fmt: str = "jsonl", **filters: Any) -> bytes:
    out = io.BytesIO()
    export_url(str(db), out, format=fmt, filters=ExportFilter(**filters))  # type: ignore[arg-type]
    return out.getvalue()


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def write(tmp_path: Path, data: bytes | str, name: str = "export.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_jsonl_has_a_manifest_then_every_field_of_every_record(db: Path) -> None:
    manifest, *records = lines(export(db))
    assert manifest["govbus_audit_export"] == 1
    assert manifest["complete"] is True
    assert manifest["heads"]["a"]["seq"] == 12
    assert manifest["checkpoints"] == {}
    assert len(records) == 17
    assert [(r["node"], r["seq"]) for r in records[:2]] == [("a", 1), ("a", 2)]
    first = records[0]
    assert list(first) == list(RECORD_COLUMNS)
    stored = query(db, "SELECT * FROM audit_records WHERE node = 'a' AND seq = 1")[0]
    assert first["data"] == json.loads(stored[12])  # data as a JSON object
    assert first["hash"] == stored[-1]
    assert first["ts"] == "2026-01-01T00:00:00.000000Z"


def test_data_is_exported_byte_for_byte_as_stored(db: Path) -> None:
    text = export(db).decode().splitlines()[1]
    (stored,) = query(db, "SELECT data FROM audit_records WHERE node = 'a' AND seq = 1")[0]
    assert f'"data":{stored},' in text


def test_a_complete_jsonl_export_verifies(db: Path, tmp_path: Path) -> None:
    checked = verify_export(write(tmp_path, export(db)))
    assert checked.complete and checked.format == "jsonl" and not checked.notes
    assert checked.report.ok, checked.report.problem
    assert checked.report.chains == {"a": 12, "b": 5}


def test_csv_has_a_header_and_keeps_data_as_json_text(db: Path, tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(export(db, "csv").decode())))
    assert rows[0] == list(RECORD_COLUMNS)
    assert len(rows) == 18
    assert json.loads(rows[1][11])["i"] == 0
    checked = verify_export(write(tmp_path, export(db, "csv"), "export.csv"))
    assert checked.format == "csv" and not checked.complete and checked.notes
    assert checked.report.ok, checked.report.problem
    assert checked.report.records == 17


def test_csv_tells_an_empty_text_from_a_missing_value_by_the_hash(db: Path) -> None:
    """Record b#2 has sender '' and a missing message id... both are empty cells in CSV."""
    data = export(db, "csv").decode()
    row = next(r for r in csv.reader(io.StringIO(data)) if r[:2] == ["b", "2"])
    assert row[8] == ""  # sender ''
    path = Path(db.parent / "x.csv")
    path.write_text(data)
    assert verify_export(path).report.ok


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"since": T0 + 3 * HOUR, "until": T0 + 5 * HOUR},
            {("a", 4), ("a", 5), ("b", 4), ("b", 5)},
        ),
        ({"kind": "delivery", "until": T0 + 4 * HOUR}, {("a", 2), ("a", 4), ("b", 2), ("b", 4)}),
        ({"agent": "planner", "until": T0 + 3 * HOUR}, {("a", 1), ("a", 3)}),
        ({"msg_type": "chat.*"}, {("a", 1), ("a", 4), ("a", 7), ("a", 10), ("b", 1), ("b", 4)}),
        ({"msg_type": "CHAT.*"}, set()),  # case-sensitive, also on SQLite
        ({"msg_type": "advice.reques?", "since": T0 + 10 * HOUR}, {("a", 11), ("a", 12)}),
    ],
    ids=["time-window", "kind", "agent-sender-or-recipient", "type-glob", "glob-case", "glob-?"],
)
def test_filters_select_records(db: Path, filters: dict[str, Any], expected: set[Any]) -> None:
    manifest, *records = lines(export(db, **filters))
    assert manifest["complete"] is False
    assert {(r["node"], r["seq"]) for r in records} == expected


def test_agent_matches_the_recipient_too(db: Path) -> None:
    _, *records = lines(export(db, agent="advisor"))
    assert len(records) == 17


def test_a_filtered_export_verifies_record_by_record(db: Path, tmp_path: Path) -> None:
    checked = verify_export(write(tmp_path, export(db, kind="delivery")))
    assert not checked.complete
    assert checked.report.ok
    assert checked.notes and "filtered export" in checked.notes[0]


def tamper_line(data: bytes, index: int, change: dict[str, Any]) -> bytes:
    text = data.decode().splitlines()
    record = json.loads(text[index])
    record.update(change)
    text[index] = json.dumps(record)
    return ("\n".join(text) + "\n").encode()


def drop_line(data: bytes, index: int) -> bytes:
    text = data.decode().splitlines()
    del text[index]
    return ("\n".join(text) + "\n").encode()


@pytest.mark.parametrize(
    ("edit", "seq", "problem"),
    [
        (lambda d: tamper_line(d, 3, {"outcome": "deny"}), 3, "hash does not match"),
        (lambda d: tamper_line(d, 3, {"data": {"i": 2}}), 3, "hash does not match"),
        (lambda d: drop_line(d, 5), 5, "missing"),
        (lambda d: drop_line(d, 12), 12, "tail deleted"),
        (lambda d: drop_line(d, 1), 1, "missing"),
    ],
    ids=["changed-field", "changed-data", "removed-record", "removed-newest", "removed-first"],
)
def test_editing_a_complete_export_is_detected(
    db: Path, tmp_path: Path, edit: Any, seq: int, problem: str
) -> None:
    report = verify_export(write(tmp_path, edit(export(db)))).report
    assert not report.ok
    assert (report.node, report.seq) == ("a", seq)
    assert report.problem is not None
    assert problem in report.problem


def test_a_changed_record_in_a_csv_export_is_detected(db: Path, tmp_path: Path) -> None:
    data = export(db, "csv").decode().replace(",allow,", ",deny,", 1)
    report = verify_export(write(tmp_path, data, "x.csv")).report
    assert not report.ok
    assert (report.node, report.seq) == ("a", 1)
    assert report.problem is not None
    assert "hash does not match" in report.problem


def test_swapped_lines_in_a_filtered_export_are_detected(db: Path, tmp_path: Path) -> None:
    text = export(db, kind="decision").decode().splitlines()
    text[2], text[3] = text[3], text[2]
    report = verify_export(write(tmp_path, "\n".join(text))).report
    assert not report.ok
    assert report.problem is not None
    assert "reordered" in report.problem


def test_an_export_of_a_pruned_store_verifies_from_its_checkpoints(
    db: Path, tmp_path: Path
) -> None:
    prune_url(str(db), before=T0 + 4 * HOUR, node="admin", now=T0 + 100 * HOUR)
    assert verify_url(str(db)).ok
    data = export(db)
    manifest = lines(data)[0]
    assert manifest["checkpoints"]["a"]["seq"] == 4
    checked = verify_export(write(tmp_path, data))
    assert checked.report.ok, checked.report.problem
    assert checked.report.pruned == {"a": 4, "b": 4}
    # The checkpoint in the manifest is attested by the audit_prune record in the file.
    forged = data.decode().replace(
        f'"seq":4,"hash":"{manifest["checkpoints"]["a"]["hash"]}"',
        f'"seq":4,"hash":"{"f" * 64}"',
    )
    assert forged != data.decode()
    assert not verify_export(write(tmp_path, forged, "forged.jsonl")).report.ok


def test_a_filtered_export_of_a_pruned_store_checks_the_first_kept_link(
    db: Path, tmp_path: Path
) -> None:
    prune_url(str(db), before=T0 + 4 * HOUR, node="admin", now=T0 + 100 * HOUR)
    data = export(db, since=T0)
    manifest = lines(data)[0]
    wrong = data.decode().replace(manifest["checkpoints"]["a"]["hash"], "e" * 64, 1)
    report = verify_export(write(tmp_path, wrong)).report
    assert not report.ok
    assert (report.node, report.seq) == ("a", 5)
    assert report.problem is not None
    assert "checkpoint" in report.problem


def test_a_file_that_is_not_an_export_is_an_error(tmp_path: Path) -> None:
    for content in ('{"hello": 1}\n', "a,b,c\n", "{not json\n"):
        with pytest.raises(AuditError, match="not a govbus audit export"):
            verify_export(write(tmp_path, content))
    with pytest.raises(AuditError, match="cannot read export file"):
        verify_export(tmp_path / "missing.jsonl")


def test_a_malformed_record_line_names_its_line(db: Path, tmp_path: Path) -> None:
    text = export(db).decode().splitlines()
    text[4] = "{broken"
    with pytest.raises(AuditError, match=r"export.jsonl:5: not an audit record"):
        verify_export(write(tmp_path, "\n".join(text)))


def test_an_unknown_format_is_an_error(db: Path) -> None:
    with pytest.raises(AuditError, match="unknown export format 'xml'"):
        export_url(str(db), io.BytesIO(), format="xml")  # type: ignore[arg-type]


def test_progress_reports_the_total_and_reaches_it(db: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    export_url(str(db), io.BytesIO(), progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 17)
    assert seen[-1] == (17, 17)


def test_data_that_is_not_json_is_exported_as_its_text_and_fails_verification(
    db: Path, tmp_path: Path
) -> None:
    from .chains import sql

    sql(db, "UPDATE audit_records SET data = 'oops' WHERE node = 'a' AND seq = 2")
    data = export(db)
    assert lines(data)[2]["data"] == "oops"
    report = verify_export(write(tmp_path, data)).report
    assert not report.ok
    assert report.seq == 2


def test_the_window_bounds_are_inclusive_and_exclusive(db: Path) -> None:
    _, *records = lines(export(db, since=T0 + 2 * HOUR, until=T0 + 2 * HOUR + timedelta(1)))
    assert (records[0]["node"], records[0]["seq"]) == ("a", 3)
    _, *none = lines(
        export(db, since=T0 + 2 * HOUR + timedelta(microseconds=1), until=T0 + 3 * HOUR)
    )
    assert none == []
