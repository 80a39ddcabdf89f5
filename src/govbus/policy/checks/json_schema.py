"""``json_schema``: validate payloads against JSON Schema (Draft 2020-12), per message type.

```yaml
- id: payload-schemas
  use: json_schema
  schemas:
    portfolio.analyze: schemas/portfolio_analyze.json   # a path, relative to the policy file
    "tool.*":                                           # or an inline schema
      type: object
      properties: {query: {type: string}}
      required: [query]
      additionalProperties: false                       # how extra fields are refused
  require_schema: false   # true: deny message types that no schema covers (no_schema)
```

Keys are message type globs. An exact type key wins; otherwise the first matching glob in file
order selects the schema. Every schema is read, checked against the Draft 2020-12 metaschema and
compiled once, at load time: a missing file, a file that is not JSON and an invalid schema are
load errors that point at the offending key (inside an inline schema, at the offending node).

``$ref`` resolves within the schema only: nothing is fetched while checking a message, so a
check never does I/O on a hop. ``format`` is an annotation, as the 2020-12 draft specifies.

The evidence of a ``schema_invalid`` denial lists up to :data:`MAX_ERRORS` errors as the
payload path, the failing keyword and what the schema expected, never the offending value:
jsonschema's own error messages quote the instance, so they are not copied into the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import islice
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import Field, StrictBool, StrictStr
from referencing import Registry

from govbus.envelope import glob_match, validate_glob
from govbus.policy.errors import CheckBuildError, ParamIssue
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

#: At most this many errors go into the evidence, so a payload that is wrong everywhere cannot
#: bloat its audit record.
MAX_ERRORS: Final = 10

#: An ``expected`` value whose JSON is longer than this (a whole subschema, say) is left out of
#: the evidence; ``schema_path`` still says where in the schema to look.
_MAX_EXPECTED_CHARS: Final = 200

#: Per-type lookups are memoized; the bound keeps a flood of distinct types from growing it.
_MAX_CACHED_TYPES: Final = 10_000

# An empty registry: unresolvable remote $refs fail instead of being fetched over the network.
_NO_RETRIEVAL: Final[Registry[Any]] = Registry()


class JsonSchemaParams(CheckParams):
    """Parameters of ``json_schema``.

    Attributes:
        schemas: message type glob -> a schema file path (relative to the policy file) or an
            inline schema object.
        require_schema: deny message types that no key covers (code ``no_schema``).
    """

    schemas: dict[StrictStr, StrictStr | dict[StrictStr, Any]] = Field(min_length=1)
    require_schema: StrictBool = False


@CHECK_KINDS.register(
    "json_schema",
    params=JsonSchemaParams,
    summary=(
        "Validate the payload against the JSON Schema (Draft 2020-12) for its message type; "
        "deny payloads that do not conform."
    ),
)
def build(params: JsonSchemaParams, ctx: LoadContext) -> CheckFn:
    """Build the ``json_schema`` check: read, check and compile every schema once."""
    issues: list[ParamIssue] = []
    compiled: list[tuple[str, Draft202012Validator]] = []
    for key, source in params.schemas.items():
        try:
            validate_glob(key)
        except ValueError as exc:
            issues.append(ParamIssue(("schemas", key), "invalid_param", f"schemas: {exc}"))
            continue
        validator = _compile(key, source, ctx, issues)
        if validator is not None:
            compiled.append((key, validator))
    if issues:
        raise CheckBuildError(issues)

    exact = {key: v for key, v in compiled if "*" not in key and "?" not in key}
    globs = tuple((key, v) for key, v in compiled if key not in exact)
    cache: dict[str, tuple[str, Draft202012Validator] | None] = {}
    require = params.require_schema

    def lookup(message_type: str) -> tuple[str, Draft202012Validator] | None:
        if message_type in cache:
            return cache[message_type]
        found: tuple[str, Draft202012Validator] | None = None
        if message_type in exact:
            found = (message_type, exact[message_type])
        else:
            found = next(((k, v) for k, v in globs if glob_match(k, message_type)), None)
        if len(cache) < _MAX_CACHED_TYPES:
            cache[message_type] = found
        return found

    def json_schema(inp: CheckInput) -> Decision:
        message_type = inp.message.type
        entry = lookup(message_type)
        if entry is None:
            if not require:
                return ALLOW
            return Deny(
                "no_schema",
                f"no payload schema covers message type {message_type!r}, and one is required",
                {"type": message_type},
            )
        key, validator = entry
        errors = list(islice(validator.iter_errors(inp.message.payload), MAX_ERRORS + 1))
        if not errors:
            return ALLOW
        evidence: dict[str, Any] = {
            "schema": key,
            "errors": [_describe(error) for error in errors[:MAX_ERRORS]],
        }
        if len(errors) > MAX_ERRORS:
            evidence["more_errors"] = True
        return Deny(
            "schema_invalid",
            f"payload does not conform to the schema for {key!r}",
            evidence,
        )

    return json_schema


def _compile(
    key: str,
    source: str | dict[str, Any],
    ctx: LoadContext,
    issues: list[ParamIssue],
) -> Draft202012Validator | None:
    loc: tuple[str | int, ...] = ("schemas", key)
    if isinstance(source, str):
        path = ctx.resolve(source)
        try:
            text = ctx.read_text(source)
        except FileNotFoundError:
            issues.append(
                ParamIssue(loc, "schema_not_found", f"schema file {source!r} not found ({path})")
            )
            return None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            issues.append(
                ParamIssue(
                    loc, "schema_unreadable", f"cannot read schema file {source!r}: {reason}"
                )
            )
            return None
        try:
            schema: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            issues.append(
                ParamIssue(
                    loc,
                    "schema_invalid_json",
                    f"schema file {source!r} is not valid JSON: {exc.msg} "
                    f"(line {exc.lineno}, column {exc.colno})",
                )
            )
            return None
        where = f"schema file {source!r}"
    else:
        schema = source
        where = f"inline schema for {key!r}"
    if not isinstance(schema, dict | bool):
        issues.append(
            ParamIssue(loc, "schema_invalid", f"{where} must be a JSON object or a boolean")
        )
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        # Inside an inline schema the issue can point at the offending node itself.
        node_loc = (*loc, *exc.absolute_path) if isinstance(source, dict) else loc
        issues.append(
            ParamIssue(
                node_loc,
                "schema_invalid",
                f"{where} is not a valid Draft 2020-12 schema at {at}: {exc.message}",
            )
        )
        return None
    return Draft202012Validator(schema, registry=_NO_RETRIEVAL)


def _describe(error: ValidationError) -> dict[str, Any]:
    """One error as evidence: where and which keyword, never the instance value."""
    described: dict[str, Any] = {
        "path": ".".join(["payload", *(str(p) for p in error.absolute_path)]),
        # A ``false`` subschema fails with no keyword of its own.
        "validator": str(error.validator) if error.validator is not None else "false",
        "schema_path": "/".join(str(p) for p in error.absolute_schema_path),
    }
    expected = error.validator_value
    if _small(expected):
        described["expected"] = expected
    return described


def _small(value: Any) -> bool:
    if isinstance(value, Mapping):
        return False  # a subschema: schema_path points at it
    try:
        return len(json.dumps(value)) <= _MAX_EXPECTED_CHARS
    except (TypeError, ValueError):
        return False
