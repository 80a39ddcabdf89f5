"""Loading policy files: the happy path, and every problem at its file:line:col."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from govbus.envelope import Classification
from govbus.policy import (
    CHECK_KINDS,
    CheckFn,
    CheckKindRegistry,
    CheckParams,
    LoadContext,
    Policy,
    PolicyError,
    PolicyIssue,
    PolicyNotFoundError,
    load_policy,
    parse_policy,
    policy_schema,
)

GOOD = """\
# Reviewed policy for the tests.
apiVersion: govbus/v1
kind: Policy
metadata:
  name: retail-banking
  version: 2026.11.0
  owner: Chief Risk Officer
  description: Default governance.
spec:
  mode: enforce
  roles: [customer, advisor, admin]
  checks:
    - id: size
      use: length
      max_bytes: 65536
    - id: trace-required
      use: required_metadata
      keys: [traceparent]
      mode: monitor
      description: every hop must be traceable
    - id: advisors-only
      use: rbac
      rules:
        - types: ["portfolio.*"]
          roles: [advisor, admin]
      default: allow
      when: {types: ["portfolio.*"], classification_at_least: pii}
"""


def issues_of(text: str, **kwargs: object) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml", **kwargs)  # type: ignore[arg-type]
    return list(info.value.issues)


def only_issue(text: str, **kwargs: object) -> PolicyIssue:
    issues = issues_of(text, **kwargs)
    assert len(issues) == 1, issues
    return issues[0]


def test_good_file_loads_with_every_field(write_policy: Callable[[str], Path]) -> None:
    path = write_policy(GOOD)
    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert (policy.name, policy.version, policy.owner) == (
        "retail-banking",
        "2026.11.0",
        "Chief Risk Officer",
    )
    assert policy.description == "Default governance."
    assert policy.mode == "enforce"
    assert policy.roles == frozenset({"customer", "advisor", "admin"})
    assert policy.source == path
    assert [(c.id, c.kind, c.mode) for c in policy.checks] == [
        ("size", "length", "enforce"),
        ("trace-required", "required_metadata", "monitor"),
        ("advisors-only", "rbac", "enforce"),
    ]
    assert policy.check("trace-required").description == "every hop must be traceable"
    when = policy.check("advisors-only").when
    assert when.classification_at_least is Classification.PII
    assert when.as_spec() == {"types": ["portfolio.*"], "classification_at_least": "pii"}
    assert policy.check("size").when.always
    assert policy.document["metadata"]["version"] == "2026.11.0"
    with pytest.raises(KeyError):
        policy.check("nope")


def test_policy_mode_is_inherited_unless_a_check_overrides_it() -> None:
    policy = parse_policy(GOOD.replace("mode: enforce", "mode: monitor"))
    assert [c.mode for c in policy.checks] == ["monitor", "monitor", "monitor"]
    policy = parse_policy(GOOD.replace("  mode: enforce\n", ""))
    assert policy.mode == "enforce"
    assert [c.mode for c in policy.checks] == ["enforce", "monitor", "enforce"]


def test_sha256_is_sha256_of_canonical_json_of_the_document() -> None:
    policy = parse_policy(GOOD)
    canonical = orjson.dumps(policy.document, option=orjson.OPT_SORT_KEYS)
    assert policy.sha256 == hashlib.sha256(canonical).hexdigest()


def test_hash_ignores_comments_layout_quoting_and_key_order() -> None:
    reformatted = """\
kind: "Policy"   # key order changed, flow style, quotes, comments
apiVersion: 'govbus/v1'
metadata: {version: "2026.11.0", name: retail-banking, owner: Chief Risk Officer,
  description: Default governance.}
spec:
  checks:
  - {id: size, use: length, max_bytes: 0x10000}
  - id: trace-required
    description: >-
      every hop must be
      traceable
    keys:
      - traceparent
    mode: monitor
    use: required_metadata
  - id: advisors-only
    use: rbac
    default: allow
    when:
      classification_at_least: pii
      types: [portfolio.*]
    rules: [{roles: [advisor, admin], types: ['portfolio.*']}]
  roles: [customer, advisor, admin]
  mode: enforce
"""
    assert parse_policy(reformatted).sha256 == parse_policy(GOOD).sha256


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("max_bytes: 65536", "max_bytes: 65537"),
        ("mode: monitor", "mode: enforce"),
        ("every hop must be traceable", "every hop must be traceable."),
        ("default: allow", "default: deny"),
        ("version: 2026.11.0", "version: 2026.11.1"),
    ],
)
def test_any_semantic_change_changes_the_hash(old: str, new: str) -> None:
    assert old in GOOD
    assert parse_policy(GOOD.replace(old, new)).sha256 != parse_policy(GOOD).sha256


def test_yaml_syntax_error_reports_the_line_and_the_parsers_message() -> None:
    text = GOOD.replace("      keys: [traceparent]\n", "      keys: [traceparent\n")
    issue = only_issue(text)
    assert issue.code == "yaml_syntax"
    assert issue.file == "p.yaml"
    # The list opened on line 18 is only found unclosed at the ':' of the next key.
    assert (issue.line, issue.column) == (19, 11)
    assert "expected ',' or ']'" in issue.message
    assert "flow sequence at line 18" in issue.message


def test_yaml_indentation_error_points_at_the_bad_line() -> None:
    text = "apiVersion: govbus/v1\nkind: Policy\nmetadata:\n  name: x\n   version: '1'\n"
    issue = only_issue(text)
    assert (issue.code, issue.line, issue.column) == ("yaml_syntax", 5, 11)
    assert "mapping values are not allowed here" in issue.message


def test_unknown_key_in_spec_points_at_the_key_and_suggests_the_closest() -> None:
    text = GOOD.replace("  roles: [customer", "  chekcs: []\n  roles: [customer")
    issue = only_issue(text)
    assert str(issue) == (
        "p.yaml:11:3: unknown_key: unknown key 'chekcs' in spec; did you mean 'checks'?"
    )


def test_unknown_top_level_key_with_suggestion() -> None:
    issue = only_issue("metdata: {}\n" + GOOD.replace("# Reviewed policy for the tests.\n", ""))
    assert (issue.line, issue.column, issue.code) == (1, 1, "unknown_key")
    assert issue.message == "unknown key 'metdata' at top level; did you mean 'metadata'?"


def test_unknown_key_without_a_close_match_has_no_suggestion() -> None:
    issue = only_issue(GOOD.replace("  owner:", "  zzzzzz: 1\n  owner:"))
    assert issue.message == "unknown key 'zzzzzz' in metadata"


def test_unknown_key_inside_when_is_an_error() -> None:
    issue = only_issue(GOOD.replace("when: {types:", "when: {typez:"))
    assert issue.code == "unknown_key"
    assert (issue.line, issue.column) == (27, 14)
    assert "did you mean 'types'?" in issue.message


def test_unknown_check_kind_points_at_use_with_suggestion() -> None:
    issue = only_issue(GOOD.replace("use: required_metadata", "use: required_metdata"))
    assert (issue.line, issue.column, issue.code) == (17, 12, "unknown_kind")
    assert issue.message == (
        "unknown check kind 'required_metdata'; did you mean 'required_metadata'?"
    )


def test_bad_parameter_type_points_at_that_parameter() -> None:
    issue = only_issue(GOOD.replace("max_bytes: 65536", "max_bytes: lots"))
    assert (issue.line, issue.column, issue.code) == (15, 18, "invalid_param")
    assert issue.message.startswith("check 'size' (length): max_bytes:")


def test_nested_bad_parameter_points_at_the_nested_value() -> None:
    issue = only_issue(GOOD.replace('types: ["portfolio.*"]\n', "types: [42]\n"))
    assert (issue.line, issue.column, issue.code) == (24, 19, "invalid_param")
    assert "rules.0.types.0" in issue.message


def test_unknown_parameter_points_at_its_key_with_suggestion() -> None:
    issue = only_issue(GOOD.replace("max_bytes: 65536", "max_bytes: 1\n      max_byte: 2"))
    assert (issue.line, issue.column, issue.code) == (16, 7, "unknown_param")
    assert "did you mean 'max_bytes'?" in issue.message


def test_misspelled_frame_key_in_a_check_is_suggested_as_frame_key() -> None:
    issue = only_issue(GOOD.replace("      mode: monitor\n", "      mdoe: monitor\n"))
    assert issue.code == "unknown_param"
    assert "did you mean 'mode'?" in issue.message


def test_missing_parameter_points_at_the_check() -> None:
    issue = only_issue(GOOD.replace("      max_bytes: 65536\n", ""))
    assert (issue.line, issue.column, issue.code) == (13, 7, "missing_param")
    assert "'max_bytes'" in issue.message


def test_duplicate_check_ids_point_at_the_second() -> None:
    issue = only_issue(GOOD.replace("id: trace-required", "id: size"))
    assert (issue.line, issue.column, issue.code) == (16, 11, "duplicate_id")
    assert "first used at line 13" in issue.message


def test_duplicate_yaml_keys_are_an_error_at_the_second_key() -> None:
    issue = only_issue(GOOD.replace("max_bytes: 65536", "max_bytes: 65536\n      max_bytes: 1"))
    assert (issue.line, issue.column, issue.code) == (16, 7, "duplicate_key")
    assert "first at line 15" in issue.message


def test_merge_keys_work_and_overriding_a_merged_key_is_not_a_duplicate() -> None:
    text = GOOD.replace(
        "    - id: size\n      use: length\n",
        "    - &base\n      id: size\n      use: length\n",
    ).replace("  checks:\n", "  checks:\n") + (
        "    - <<: *base\n      id: size-2\n      max_bytes: 10\n"
    )
    policy = parse_policy(text)
    assert [c.id for c in policy.checks][-1] == "size-2"
    assert policy.document["spec"]["checks"][-1] == {
        "id": "size-2",
        "use": "length",
        "max_bytes": 10,
    }


def test_missing_file_raises_policy_not_found_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyNotFoundError) as info:
        load_policy(path)
    assert info.value.code == "policy_not_found"
    assert info.value.path == path
    assert str(path) in str(info.value)
    assert isinstance(info.value, PolicyError)


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert not isinstance(info.value, PolicyNotFoundError)
    assert [i.code for i in info.value.issues] == ["unreadable"]


def test_invalid_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: \xff}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    [issue] = info.value.issues
    assert (issue.line, issue.column, issue.code) == (3, 18, "unreadable")


def test_undeclared_role_points_at_the_role_with_suggestion() -> None:
    issue = only_issue(GOOD.replace("roles: [advisor, admin]", "roles: [advisor, admn]"))
    assert (issue.line, issue.column, issue.code) == (25, 28, "undeclared_role")
    assert issue.message == "role 'admn' is not declared in spec.roles; did you mean 'admin'?"


def test_roles_are_not_checked_when_the_policy_declares_none() -> None:
    text = GOOD.replace("  roles: [customer, advisor, admin]\n", "").replace("admin]", "admn]")
    assert parse_policy(text).roles == frozenset()


def test_every_issue_is_reported_together_in_file_order() -> None:
    text = (
        GOOD.replace("  roles: [customer", "  chekcs: []\n  roles: [customer")
        .replace("max_bytes: 65536", "max_bytes: -1")
        .replace("use: required_metadata", "use: required_metdata")
        .replace("roles: [advisor, admin]", "roles: [advisor, admn]")
        .replace("id: advisors-only", "id: size")
        .replace("version: 2026.11.0", "version: 1.10")
    )
    issues = issues_of(text)
    assert [(i.line, i.code) for i in issues] == [
        (6, "invalid_type"),
        (11, "unknown_key"),
        (16, "invalid_param"),
        (18, "unknown_kind"),
        (22, "duplicate_id"),
        (26, "undeclared_role"),
    ]
    assert 'quote it: "1.10"' in issues[0].message


def test_missing_required_keys_are_reported_at_their_mapping() -> None:
    issues = issues_of("apiVersion: govbus/v1\nkind: Policy\nmetadata:\n  name: x\nspec: {}\n")
    assert [(i.line, i.column, i.code, i.message) for i in issues] == [
        (4, 3, "missing_key", "missing key 'version' in metadata"),
        (5, 7, "missing_key", "missing key 'checks' in spec"),
    ]


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("", "empty", "empty"),
        ("# only a comment\n", "empty", "empty"),
        ("- a\n- b\n", "invalid_type", "must be a mapping"),
        ("a: 1\n---\nb: 2\n", "yaml_syntax", "single document"),
        ("a: !!binary aGVsbG8=\n", "yaml_unsupported", "!!binary"),
        ("a: !custom x\n", "yaml_unsupported", "!custom"),
        ("a: &a [*a]\n", "yaml_unsupported", "recursive alias"),
        ("a: .inf\n", "invalid_value", ".inf"),
        ("a: 100000000000000000000000\n", "invalid_value", "out of range"),
        ("? [a, b]\n: c\n", "yaml_unsupported", "keys must be strings"),
        ("a: \x00\n", "yaml_syntax", "unacceptable character"),
        ('a: "\\ud800"\n', "yaml_unsupported", "Unicode"),
        ("[" * 100 + "]" * 100, "yaml_unsupported", "nested deeper than 64 levels"),
        ("[" * 600 + "]" * 600, "yaml_syntax", "nested too deeply"),
    ],
)
def test_yaml_problems_are_policy_errors(text: str, code: str, fragment: str) -> None:
    issues = issues_of(text)
    assert any(i.code == code and fragment in i.message for i in issues), issues


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    issue = only_issue("\n".join(lines) + "\n")
    assert issue.code == "yaml_unsupported"
    assert "alias bomb" in issue.message


def test_enum_error_suggests_the_closest_value() -> None:
    issue = only_issue(GOOD.replace("mode: enforce", "mode: enforcing"))
    assert (issue.line, issue.column, issue.code) == (10, 9, "invalid_value")
    assert "did you mean 'enforce'?" in issue.message


def test_api_version_and_kind_must_be_exact() -> None:
    issues = issues_of(GOOD.replace("govbus/v1", "govbus/v2").replace("kind: Policy", "kind: Pol"))
    assert [(i.line, i.code) for i in issues] == [(2, "invalid_value"), (3, "invalid_value")]
    assert "must be 'govbus/v1'" in issues[0].message


def test_bad_check_id_and_bad_type_glob_are_frame_errors() -> None:
    text = GOOD.replace("id: size", "id: Size Check").replace(
        'when: {types: ["portfolio.*"]', 'when: {types: ["Portfolio/*"]'
    )
    issues = issues_of(text)
    assert [(i.line, i.code) for i in issues] == [(13, "invalid_value"), (27, "invalid_value")]


def _failing_kinds() -> CheckKindRegistry:
    kinds = CHECK_KINDS.copy()

    @kinds.register("broken", params=CheckParams, summary="Always fails to build.")
    def build(params: CheckParams, ctx: LoadContext) -> CheckFn:
        raise ValueError("bad regex: unbalanced parenthesis")

    return kinds


def test_exception_from_build_is_an_issue_at_the_check() -> None:
    text = GOOD + "    - id: broken-one\n      use: broken\n"
    issue = only_issue(text, kinds=_failing_kinds())
    assert (issue.line, issue.column, issue.code) == (28, 7, "check_build")
    assert issue.message == (
        "check 'broken-one' (broken) could not be built: "
        "ValueError: bad regex: unbalanced parenthesis"
    )


def test_build_gets_a_load_context(write_policy: Callable[[str], Path]) -> None:
    seen: list[LoadContext] = []
    kinds = CHECK_KINDS.copy()

    @kinds.register("spy", params=CheckParams, summary="Records its load context.")
    def build(params: CheckParams, ctx: LoadContext) -> CheckFn:
        seen.append(ctx)
        return lambda inp: __import__("govbus.policy").policy.ALLOW

    path = write_policy(GOOD + "    - id: spy\n      use: spy\n")
    load_policy(path, kinds=kinds)
    parse_policy(GOOD + "    - id: spy2\n      use: spy\n", base_dir="/srv/policies", kinds=kinds)
    assert seen[0].policy_path == path
    assert seen[0].base_dir == path.parent
    assert seen[0].check_id == "spy"
    assert seen[0].roles == frozenset({"customer", "advisor", "admin"})
    assert seen[0].resolve("schemas/a.json") == path.parent / "schemas" / "a.json"
    assert seen[1].policy_path is None
    assert seen[1].base_dir == Path("/srv/policies")


def test_parse_policy_has_no_source_path() -> None:
    assert parse_policy(GOOD).source is None


def test_shipped_schema_is_valid_draft_2020_12_and_forbids_unknown_keys() -> None:
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["$defs"]["check"]  # kind params are free here
    assert schema["$defs"]["check"]["properties"]["when"]["additionalProperties"] is False


def test_a_value_reported_while_reading_yaml_is_not_reported_again_by_the_schema() -> None:
    issue = only_issue(GOOD.replace("version: 2026.11.0", "version: !!binary aGk="))
    assert (issue.line, issue.code) == (6, "yaml_unsupported")


def test_issues_from_different_steps_are_sorted_by_position() -> None:
    text = GOOD.replace("  owner:", "  ownr: x\n  owner:") + "      default: deny\n"
    issues = issues_of(text)
    assert [(i.line, i.code) for i in issues] == [(7, "unknown_key"), (29, "duplicate_key")]


def test_a_multi_line_build_error_stays_one_issue_per_line() -> None:
    kinds = CHECK_KINDS.copy()

    @kinds.register("chatty", params=CheckParams, summary="Fails with a long story.")
    def build(params: CheckParams, ctx: LoadContext) -> CheckFn:
        raise ValueError("line one\nline two")

    with pytest.raises(PolicyError) as info:
        parse_policy(GOOD + "    - id: chatty\n      use: chatty\n", kinds=kinds)
    assert str(info.value).count("\n") == 0
    assert "line one line two" in str(info.value)
