"""The ``json_schema`` kind: payloads validated against per-type Draft 2020-12 schemas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from govbus.policy import (
    CHECK_KINDS,
    CheckInput,
    CheckKindRegistry,
    Policy,
    PolicyError,
    load_policy,
)
from govbus.policy.review import diff, explain

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]
WritePolicy = Callable[..., Path]

INLINE = """
        spec:
          checks:
            - id: schemas
              use: json_schema
              schemas:
                portfolio.analyze:
                  type: object
                  properties:
                    amount: {type: number, minimum: 0}
                    tickers: {type: array, items: {type: string}}
                  required: [amount]
                  additionalProperties: false
                "tool.*": {type: object, required: [query]}
              require_schema: false
"""

FILE_POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata:
  name: test
  version: "1"
spec:
  checks:
    - id: schemas
      use: json_schema
      schemas:
        portfolio.analyze: schemas/portfolio_analyze.json
"""

PORTFOLIO_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"amount": {"type": "number"}},
    "required": ["amount"],
}


def test_a_conforming_payload_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(payload={"amount": 10, "tickers": ["AAPL"]})
    evaluation = load_spec(INLINE).evaluate(inp)
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "allow"


def test_errors_name_path_and_keyword_but_never_the_offending_value(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    secret = "acct-4111-SECRET"
    payload = {"amount": secret, "tickers": ["AAPL", 7]}
    # jsonschema's own messages quote the value: copying them would leak it into the audit log.
    assert any(
        secret in e.message for e in Draft202012Validator({"type": "number"}).iter_errors(secret)
    )
    result = load_spec(INLINE).evaluate(make_input(payload=payload)).results[0]
    assert (result.outcome, result.code) == ("deny", "schema_invalid")
    assert result.evidence["schema"] == "portfolio.analyze"
    errors = result.evidence["errors"]
    assert [(e["path"], e["validator"], e["expected"]) for e in errors] == [
        ("payload.amount", "type", "number"),
        ("payload.tickers.1", "type", "string"),
    ]
    assert errors[0]["schema_path"] == "properties/amount/type"
    assert secret not in json.dumps(dict(result.evidence))
    assert secret not in (result.reason or "")


def test_additional_properties_false_refuses_extra_fields(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(payload={"amount": 1, "note": "call me at home"})
    result = load_spec(INLINE).evaluate(inp).results[0]
    assert result.code == "schema_invalid"
    assert result.evidence["errors"] == [
        {
            "path": "payload",
            "validator": "additionalProperties",
            "schema_path": "additionalProperties",
            "expected": False,
        }
    ]
    assert "call me at home" not in json.dumps(dict(result.evidence))


def test_glob_keys_select_schemas_and_uncovered_types_pass(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = load_spec(INLINE)
    assert policy.evaluate(make_input(type="tool.search", payload={"query": "x"})).allowed
    denied = policy.evaluate(make_input(type="tool.search", payload={})).results[0]
    assert (denied.code, denied.evidence["schema"]) == ("schema_invalid", "tool.*")
    assert denied.evidence["errors"][0]["validator"] == "required"
    assert policy.evaluate(make_input(type="chat.message", payload={"any": 1})).allowed


def test_require_schema_denies_types_no_schema_covers(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = load_spec(INLINE.replace("require_schema: false", "require_schema: true"))
    result = policy.evaluate(make_input(type="chat.message")).results[0]
    assert (result.outcome, result.code) == ("deny", "no_schema")
    assert result.evidence == {"type": "chat.message"}
    assert policy.evaluate(make_input(type="tool.search", payload={"query": "x"})).allowed


def test_an_exact_key_wins_over_an_earlier_glob(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = load_spec("""
        spec:
          checks:
            - id: schemas
              use: json_schema
              schemas:
                "portfolio.*": {type: object, required: [a]}
                portfolio.analyze: {type: object, required: [b]}
        """)
    assert policy.evaluate(make_input(type="portfolio.analyze", payload={"b": 1})).allowed
    assert not policy.evaluate(make_input(type="portfolio.advise", payload={"b": 1})).allowed


def test_evidence_lists_at_most_ten_errors(load_spec: LoadText, make_input: MakeInput) -> None:
    names = [f"f{i}" for i in range(12)]
    policy = load_spec(f"""
        spec:
          checks:
            - id: schemas
              use: json_schema
              schemas:
                portfolio.analyze: {{type: object, required: [{", ".join(names)}]}}
        """)
    result = policy.evaluate(make_input(payload={})).results[0]
    assert len(result.evidence["errors"]) == 10
    assert result.evidence["more_errors"] is True


def test_a_schema_file_resolves_against_the_policy_file_and_is_read_once(
    tmp_path: Path,
    write_policy: WritePolicy,
    kinds: CheckKindRegistry,
    make_input: MakeInput,
) -> None:
    schema_file = tmp_path / "schemas" / "portfolio_analyze.json"
    schema_file.parent.mkdir()
    schema_file.write_text(json.dumps(PORTFOLIO_SCHEMA), encoding="utf-8")
    policy = load_policy(write_policy(FILE_POLICY), kinds=kinds)
    schema_file.unlink()  # compiled at load: evaluation never goes back to the file
    assert policy.evaluate(make_input(payload={"amount": 3})).allowed
    result = policy.evaluate(make_input(payload={"amount": "3"})).results[0]
    assert result.code == "schema_invalid"


def test_a_missing_schema_file_is_reported_at_its_key(
    write_policy: WritePolicy, kinds: CheckKindRegistry
) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(FILE_POLICY), kinds=kinds)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (11, "schema_not_found")
    assert "schemas/portfolio_analyze.json" in issue.message


def test_a_schema_file_that_is_not_json_is_reported_at_its_key(
    tmp_path: Path, write_policy: WritePolicy, kinds: CheckKindRegistry
) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "portfolio_analyze.json").write_text("{type: object", "utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(FILE_POLICY), kinds=kinds)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (11, "schema_invalid_json")
    assert "schemas/portfolio_analyze.json" in issue.message


def test_an_invalid_schema_file_is_reported_at_its_key(
    tmp_path: Path, write_policy: WritePolicy, kinds: CheckKindRegistry
) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "portfolio_analyze.json").write_text('{"required": "x"}', "utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(FILE_POLICY), kinds=kinds)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (11, "schema_invalid")
    assert "at required" in issue.message


def test_an_invalid_inline_schema_is_reported_at_the_offending_node(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(INLINE.replace("{type: number, minimum: 0}", "{type: numbr, minimum: 0}"))
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (15, "schema_invalid")
    assert "properties/amount/type" in issue.message


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ('"tool.*"', '"Tool/*"', 19, "invalid type pattern"),
        ("require_schema: false", "require_schema: maybe", 20, "require_schema"),
        ("require_schema: false", "require_schemas: true", 20, "unknown parameter"),
        ('"tool.*": {type: object, required: [query]}', '"tool.*": 3', 19, "schemas.tool.*"),
    ],
)
def test_bad_parameters_are_reported_where_they_are(
    load_spec: LoadText, old: str, new: str, line: int, fragment: str
) -> None:
    assert old in INLINE
    with pytest.raises(PolicyError) as info:
        load_spec(INLINE.replace(old, new))
    assert any(i.line == line and fragment in i.message for i in info.value.issues), (
        info.value.issues
    )


def test_schemas_must_not_be_empty(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks: [{id: s, use: json_schema, schemas: {}}]
            """)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (8, "invalid_param")


def test_json_schema_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["json_schema"]
    assert {"schemas", "require_schema"} <= set(kind.params.model_fields)
    assert kind.summary.endswith(".")


def test_editing_a_schema_file_changes_the_policy_hash(
    tmp_path: Path, write_policy: WritePolicy, kinds: CheckKindRegistry
) -> None:
    """An approval is for what the policy does: a schema file is part of it."""
    schema_file = tmp_path / "schemas" / "portfolio_analyze.json"
    schema_file.parent.mkdir()
    schema_file.write_text(json.dumps(PORTFOLIO_SCHEMA), encoding="utf-8")
    path = write_policy(FILE_POLICY)
    before = load_policy(path, kinds=kinds)
    assert set(before.files) == {"schemas/portfolio_analyze.json"}
    schema_file.write_text(json.dumps({**PORTFOLIO_SCHEMA, "required": []}), encoding="utf-8")
    after = load_policy(path, kinds=kinds)
    assert after.sha256 != before.sha256
    assert after.document == before.document
    changes = [c.text for c in diff(before, after)]
    assert changes == ["file changed: schemas/portfolio_analyze.json (content differs)"]
    assert "The hash covers the file schemas/portfolio_analyze.json" in explain(after)


def test_a_policy_without_files_is_hashed_as_its_document_alone(load_spec: LoadText) -> None:
    policy = load_spec(INLINE)
    assert policy.files == {}
    assert (
        policy.sha256
        == hashlib.sha256(
            orjson.dumps(dict(policy.document), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
    )
