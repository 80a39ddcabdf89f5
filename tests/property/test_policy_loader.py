"""Property tests: the policy hash ignores formatting; the loader only ever raises PolicyError."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govbus.policy import Policy, PolicyError, parse_policy

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROLE_POOL = ["customer", "advisor", "compliance", "admin", "system"]
names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,3}){0,2}", fullmatch=True) | st.text(
    min_size=1, max_size=12
)
# Printable text with spaces and line breaks: what a human writes in an owner or description.
prose = st.text(
    st.characters(categories=["L", "N", "P", "S", "Zs"]) | st.sampled_from("\n:#-'\""),
    max_size=40,
)
type_globs = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.([a-z0-9_]{1,5}|\*)){0,2}|\*", fullmatch=True)
name_globs = st.from_regex(r"[a-z*][a-z0-9_*?-]{0,8}", fullmatch=True)
meta_keys = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


@st.composite
def when_clauses(draw: st.DrawFn) -> dict[str, Any]:
    when: dict[str, Any] = {}
    if draw(st.booleans()):
        when["types"] = draw(st.lists(type_globs, min_size=1, max_size=3))
    if draw(st.booleans()):
        when["senders"] = draw(st.lists(name_globs, min_size=1, max_size=2))
    if draw(st.booleans()):
        when["recipients"] = draw(st.lists(name_globs, min_size=1, max_size=2))
    if draw(st.booleans()):
        when["classification_at_least"] = draw(
            st.sampled_from(["public", "internal", "pii", "secret"])
        )
    return when


@st.composite
def checks(draw: st.DrawFn, check_id: str, roles: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["length", "required_metadata", "rbac"]))
    entry: dict[str, Any] = {"id": check_id, "use": kind}
    if kind == "length":
        entry["max_bytes"] = draw(st.integers(1, 2**40))
    elif kind == "required_metadata":
        entry["keys"] = draw(st.lists(meta_keys, min_size=1, max_size=3))
        if draw(st.booleans()):
            entry["non_empty"] = draw(st.booleans())
    else:
        pool = roles or ROLE_POOL
        rules = []
        for _ in range(draw(st.integers(1, 3))):
            rule: dict[str, Any] = {
                "types": draw(st.lists(type_globs, min_size=1, max_size=2)),
                "roles": draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)),
            }
            if draw(st.booleans()):
                rule["senders"] = draw(st.lists(name_globs, min_size=1, max_size=2))
            rules.append(rule)
        entry["rules"] = rules
        if draw(st.booleans()):
            entry["default"] = draw(st.sampled_from(["allow", "deny"]))
    if draw(st.booleans()):
        entry["mode"] = draw(st.sampled_from(["enforce", "monitor"]))
    if draw(st.booleans()):
        entry["when"] = draw(when_clauses())
    if draw(st.booleans()):
        entry["description"] = draw(prose)
    return entry


@st.composite
def policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(names), "version": draw(versions)}
    if draw(st.booleans()):
        metadata["owner"] = draw(prose)
    if draw(st.booleans()):
        metadata["description"] = draw(prose)
    roles = draw(st.lists(st.sampled_from(ROLE_POOL), unique=True, max_size=5))
    ids = draw(
        st.lists(
            st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True), unique=True, max_size=5
        )
    )
    spec: dict[str, Any] = {"checks": [draw(checks(i, roles)) for i in ids]}
    if draw(st.booleans()) or roles:
        spec["roles"] = roles
    if draw(st.booleans()):
        spec["mode"] = draw(st.sampled_from(["enforce", "monitor"]))
    return {"apiVersion": "govbus/v1", "kind": "Policy", "metadata": metadata, "spec": spec}


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same data with every mapping's keys in a random order (lists keep their order)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def renderings(doc: dict[str, Any], rng: random.Random) -> list[str]:
    """The same document written in different YAML styles, key orders and with comments."""
    return [
        yaml.safe_dump(doc, sort_keys=False),
        yaml.safe_dump(doc, sort_keys=True, indent=4, width=30),
        yaml.safe_dump(shuffled(doc, rng), sort_keys=False, default_flow_style=True, width=60),
        yaml.safe_dump(shuffled(doc, rng), sort_keys=False, default_flow_style=None),
        yaml.safe_dump(doc, canonical=True),
        yaml.safe_dump(doc, default_style='"', allow_unicode=True),
        "# reviewed\n\n"
        + yaml.safe_dump(shuffled(doc, rng), sort_keys=False, explicit_start=True)
        + "# end of policy\n",
    ]


@SETTINGS
@given(doc=policy_documents(), seed=st.integers(0, 2**32))
def test_hash_is_invariant_under_yaml_reformatting(doc: dict[str, Any], seed: int) -> None:
    rng = random.Random(seed)
    expected = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    for text in renderings(doc, rng):
        policy = parse_policy(text)
        assert policy.document == doc
        assert policy.sha256 == expected


@SETTINGS
@given(doc=policy_documents(), data=st.data())
def test_hash_changes_when_a_value_changes(doc: dict[str, Any], data: st.DataObject) -> None:
    changed = orjson.loads(orjson.dumps(doc))
    changed["metadata"]["version"] = doc["metadata"]["version"] + data.draw(
        st.sampled_from([".1", "-rc1", "x"])
    )
    assert parse_policy(yaml.safe_dump(changed)).sha256 != parse_policy(yaml.safe_dump(doc)).sha256


VALID = """\
apiVersion: govbus/v1
kind: Policy
metadata:
  name: retail-banking
  version: 2026.11.0
spec:
  mode: enforce
  roles: [customer, advisor, admin]
  checks:
    - id: size
      use: length
      max_bytes: 65536
    - id: trace
      use: required_metadata
      keys: [traceparent]
      when: {types: ["portfolio.*"], senders: [web], classification_at_least: pii}
    - id: rbac
      use: rbac
      rules:
        - types: ["portfolio.*"]
          roles: [advisor, admin]
      default: allow
"""

TOKENS = [
    *"abcxyz019 :-[]{},'\"!&*#|>%@`?.\n\t\\",
    "  ",
    "\n  ",
    "\n    - ",
    ": ",
    "- ",
    "apiVersion",
    "govbus/v1",
    "kind",
    "Policy",
    "metadata",
    "spec",
    "checks",
    "roles",
    "id",
    "use",
    "when",
    "mode",
    "length",
    "rbac",
    "max_bytes",
    "<<",
    "&a",
    "*a",
    "!!binary",
    "!!python/object",
    "~",
    "null",
    "yes",
    ".inf",
    "0x",
    "99999999999999999999999",
    "---",
    "...",
    "\x00",
    "\ufeff",
    "\u2028",
    "é",
]
yamlish = st.lists(st.sampled_from(TOKENS), max_size=80).map("".join)


def assert_loads_or_policy_error(text: str) -> None:
    try:
        outcome: Policy | PolicyError = parse_policy(text, source="fuzz.yaml")
    except PolicyError as exc:
        outcome = exc
    if isinstance(outcome, Policy):
        return
    assert outcome.issues
    for issue in outcome.issues:
        assert issue.file == "fuzz.yaml"
        assert issue.line >= 1
        assert issue.column >= 1
        assert issue.code
    assert str(outcome).count("\n") == len(outcome.issues) - 1  # one line per issue


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text_only_raises_policy_error(text: str) -> None:
    assert_loads_or_policy_error(text)


@SETTINGS
@given(text=yamlish)
def test_yaml_like_text_only_raises_policy_error(text: str) -> None:
    assert_loads_or_policy_error(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line"]))
        at = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + 1 :]
        else:
            lines = text.splitlines(keepends=True)
            index = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            text = "".join(lines)
    return text


@SETTINGS
@given(text=mutated())
def test_mutated_policy_files_only_raise_policy_error(text: str) -> None:
    assert_loads_or_policy_error(text)


def test_the_unmutated_policy_is_valid() -> None:
    """The fuzz seed must load, or the mutation test would only ever see broken files."""
    assert [c.id for c in parse_policy(VALID).checks] == ["size", "trace", "rbac"]
