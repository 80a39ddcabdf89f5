"""Loading policy files: YAML -> plain data with positions -> JSON Schema -> kinds -> Policy.

Every problem is reported at the line and column of the node it is about, and all problems are
collected before one :class:`PolicyError` is raised: a reviewer sees the whole list at once, and
a half-built policy is never returned.

The steps:

1. read the file (missing -> :class:`PolicyNotFoundError`);
2. compose the YAML (PyYAML's safe loader) into nodes, and build plain JSON data from them while
   recording the position of every key and value (duplicate keys, unsupported tags and values
   JSON cannot hold are problems here, where PyYAML would silently keep the last key);
3. validate the frame against the JSON Schema shipped in the package (``policy.schema.json``);
4. for each check, find its kind in the registry, validate its parameters with the kind's model,
   and build it (duplicate ids, unknown kinds and build failures are problems here);
5. hash the canonical JSON of the document (:attr:`Policy.sha256`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

import orjson
import yaml
from jsonschema import Draft202012Validator, ValidationError
from pydantic import ValidationError as PydanticValidationError

from govbus.policy.engine import CompiledCheck, Mode, Policy, When
from govbus.policy.errors import (
    CheckBuildError,
    PolicyError,
    PolicyIssue,
    PolicyNotFoundError,
    did_you_mean,
)
from govbus.policy.kinds import CHECK_KINDS, RESERVED_KEYS, CheckKindRegistry, LoadContext

__all__ = ["NodePositions", "load_policy", "node_positions", "parse_policy", "policy_schema"]

_Path = tuple[str | int, ...]
_Pos = tuple[int, int]

# Policy files are small and shallow; these bounds keep hostile input (alias bombs, deep
# nesting) from turning a load into a denial of service.
_MAX_NODES: Final = 100_000
_MAX_DEPTH: Final = 64

_TAG: Final = "tag:yaml.org,2002:"
_MAP_TAG: Final = _TAG + "map"
_SEQ_TAG: Final = _TAG + "seq"
_STR_TAG: Final = _TAG + "str"
_MERGE_TAG: Final = _TAG + "merge"
_TIMESTAMP_TAG: Final = _TAG + "timestamp"
_CONSTRUCTED_TAGS: Final = frozenset(_TAG + t for t in ("int", "float", "bool", "null"))

# orjson (the canonical form) holds integers of at most 64 bits.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_JSON_TYPES: Final = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}
_SCHEMA_TYPES: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "null": "null",
}


@cache
def policy_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the policy file frame, as shipped in the package."""
    text = files("govbus.policy").joinpath("policy.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def load_policy(path: str | Path, *, kinds: CheckKindRegistry = CHECK_KINDS) -> Policy:
    """Load and validate the policy file at ``path``.

    Relative file parameters in the policy (schemas, ledgers) resolve against the file's
    directory.

    Args:
        path: the policy YAML file.
        kinds: the check-kind registry to resolve ``use:`` against.

    Raises:
        PolicyNotFoundError: the file does not exist.
        PolicyError: the file cannot be read or is invalid; ``issues`` lists every problem.
    """
    file = Path(path)
    label = str(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise PolicyNotFoundError(path) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError(
            [PolicyIssue(label, 1, 1, "unreadable", f"cannot read policy file: {reason}")]
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PolicyError(
            [PolicyIssue(label, line, column, "unreadable", "policy file is not valid UTF-8")]
        ) from None
    return _Loader(text, label, file, file.parent, kinds).load()


def policy_hash(document: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """The policy's sha256: of its canonical JSON, or, when its checks read files (schemas),
    of the canonical JSON of ``{"document": ..., "files": {name: sha256 of the file}}``, so
    editing a schema file changes the hash exactly like editing the policy does.
    """
    covered: Any = {"document": document, "files": dict(files)} if files else document
    return hashlib.sha256(orjson.dumps(covered, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_policy(
    text: str,
    *,
    source: str = "<string>",
    base_dir: str | Path | None = None,
    kinds: CheckKindRegistry = CHECK_KINDS,
) -> Policy:
    """Load a policy from YAML text (see :func:`load_policy`).

    Args:
        text: the policy YAML.
        source: the name used in issue locations.
        base_dir: where relative file parameters resolve (default: the working directory).
        kinds: the check-kind registry to resolve ``use:`` against.

    Raises:
        PolicyError: the policy is invalid; ``issues`` lists every problem.

    Example:
        >>> policy = parse_policy('''
        ... apiVersion: govbus/v1
        ... kind: Policy
        ... metadata: {name: tiny, version: "1"}
        ... spec:
        ...   checks:
        ...     - {id: size, use: length, max_bytes: 1024}
        ... ''')
        >>> [c.id for c in policy.checks], policy.mode
        (['size'], 'enforce')
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _Loader(text, source, None, base, kinds).load()


@dataclass(frozen=True, slots=True)
class NodePositions:
    """Where each node of a policy file is written, as 1-based ``(line, column)`` pairs.

    Paths are tuples of mapping keys and list indexes, e.g. ``("spec", "checks", 0, "use")``.

    Attributes:
        values: the position of the value at each path.
        keys: the position of the mapping key naming each path (absent for list items).
        readable: False when the YAML could not be read at all (then both maps may be partial).
    """

    values: Mapping[_Path, _Pos]
    keys: Mapping[_Path, _Pos]
    readable: bool

    def at(self, path: _Path, *, key: bool = False) -> _Pos:
        """Where ``path`` is written: its key (``key=True``) or value, else its nearest parent."""
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))


def node_positions(text: str) -> NodePositions:
    """The positions of every node of the policy YAML ``text``, as the loader records them.

    For tools that report on a policy that already loaded (``govbus policy lint`` warnings);
    it reads the YAML only and validates nothing.

    Example:
        >>> node_positions("spec:\\n  mode: monitor\\n").at(("spec", "mode"))
        (2, 9)
    """
    loader = _Loader(text, "<string>", None, Path.cwd(), CHECK_KINDS)
    readable = loader._compose() is not _FAILED
    return NodePositions(dict(loader.values), dict(loader.keys), readable)


class _Loader:
    """One load: the text, where every node is, and the problems found so far."""

    def __init__(
        self,
        text: str,
        source: str,
        path: Path | None,
        base_dir: Path,
        kinds: CheckKindRegistry,
    ) -> None:
        self.text = text
        self.source = source
        self.path = path
        self.base_dir = base_dir
        # Files the checks read (name -> sha256), which the policy's hash covers too.
        self.files: dict[str, str] = {}
        self.kinds = kinds
        self.issues: list[PolicyIssue] = []
        self.values: dict[_Path, _Pos] = {}  # position of the value at each path
        self.keys: dict[_Path, _Pos] = {}  # position of the mapping key naming each path
        self.raw: dict[_Path, str] = {}  # source text of non-string scalars (for hints)
        self.bad: set[_Path] = set()  # values already reported while reading the YAML
        self.nodes = 0
        self.constructor = yaml.constructor.SafeConstructor()

    # -- driver --------------------------------------------------------------------------------

    def load(self) -> Policy:
        doc = self._compose()
        if doc is _FAILED:
            raise self._error()
        self._validate_frame(doc)
        checks = self._build_checks(doc)
        if self.issues or checks is None:
            raise self._error()
        spec = doc["spec"]
        metadata = doc["metadata"]
        return Policy(
            name=metadata["name"],
            version=metadata["version"],
            owner=metadata.get("owner"),
            description=metadata.get("description"),
            mode=spec.get("mode", "enforce"),
            roles=frozenset(spec.get("roles", ())),
            checks=checks,
            sha256=policy_hash(doc, self.files),
            source=self.path,
            document=doc,
            files=dict(self.files),
        )

    def _issue(self, pos: _Pos, code: str, message: str) -> None:
        # One issue per output line, whatever a kind's exception message contains.
        message = " ".join(message.split("\n"))
        self.issues.append(PolicyIssue(self.source, pos[0], pos[1], code, message))

    def _error(self) -> PolicyError:
        unique = list(dict.fromkeys(self.issues))
        unique.sort(key=lambda i: (i.line, i.column))
        return PolicyError(unique)

    def _bad_value(self, path: _Path, pos: _Pos, code: str, message: str) -> None:
        """Report a value that could not be turned into data; later steps then stay quiet
        about it instead of reporting the same spot twice."""
        self._issue(pos, code, message)
        self.bad.add(path)

    def _is_bad(self, path: _Path) -> bool:
        return bool(self.bad) and any(path[:n] in self.bad for n in range(len(path) + 1))

    def _pos(self, path: _Path, *, key: bool = False) -> _Pos:
        """Where ``path`` is written: its key (``key=True``) or value, else its nearest parent."""
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    # -- step 2: YAML nodes -> plain data with positions ---------------------------------------

    def _compose(self) -> Any:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
            return _FAILED
        except yaml.YAMLError as exc:  # the reader's errors carry an offset, not a mark
            offset = getattr(exc, "position", 0)
            offset = offset if isinstance(offset, int) else 0
            self._issue(self._offset_pos(offset), "yaml_syntax", _first_line(str(exc)))
            return _FAILED
        except RecursionError:
            self._issue((1, 1), "yaml_syntax", "the document is nested too deeply")
            return _FAILED
        if root is None:
            self._issue((1, 1), "empty", "policy file is empty")
            return _FAILED
        try:
            return self._data(root, (), 0, set())
        except _TooLarge:
            self._issue(
                (1, 1),
                "yaml_unsupported",
                f"the document expands to more than {_MAX_NODES} nodes (alias bomb?)",
            )
            return _FAILED

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = exc.problem or "invalid YAML"
        if exc.context:
            where = ""
            if exc.context_mark is not None and exc.context_mark is not mark:
                cm = exc.context_mark
                where = f" at line {cm.line + 1}, column {cm.column + 1}"
            if exc.context.startswith("while"):
                message = f"{message} ({exc.context}{where})"
            else:
                message = f"{exc.context}{where}; {message}"
        self._issue(pos, "yaml_syntax", message)

    def _offset_pos(self, offset: int) -> _Pos:
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        return line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1

    def _data(self, node: yaml.Node, path: _Path, depth: int, active: set[int]) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooLarge
        pos = _mark(node)
        self.values[path] = pos
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path, pos)
        if depth >= _MAX_DEPTH:
            self._bad_value(
                path, pos, "yaml_unsupported", f"nested deeper than {_MAX_DEPTH} levels"
            )
            return None
        if id(node) in active:  # an alias to an enclosing node: infinite data
            self._bad_value(path, pos, "yaml_unsupported", "recursive alias")
            return None
        active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    self._bad_value(
                        path, pos, "yaml_unsupported", f"unsupported YAML tag {_tag(node.tag)}"
                    )
                    return None
                return [
                    self._data(item, (*path, i), depth + 1, active)
                    for i, item in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth, active)
            return None
        finally:
            active.discard(id(node))

    def _mapping(
        self, node: yaml.MappingNode, path: _Path, depth: int, active: set[int]
    ) -> dict[str, Any] | None:
        pos = _mark(node)
        if node.tag != _MAP_TAG:
            self._bad_value(path, pos, "yaml_unsupported", f"unsupported YAML tag {_tag(node.tag)}")
            return None
        # Duplicates among the keys written here are mistakes; keys brought in by a merge
        # (``<<: *defaults``) are meant to be overridden, so they are checked before merging.
        first: dict[str, _Pos] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key_pos = _mark(key_node)
            if key_node.value in first:
                line, column = first[key_node.value]
                self._issue(
                    key_pos,
                    "duplicate_key",
                    f"duplicate key {key_node.value!r} (first at line {line}, column {column}); "
                    "YAML would silently keep only the last",
                )
            else:
                first[key_node.value] = key_pos
        try:
            self.constructor.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
            self.bad.add(path)
            return None
        last: dict[str, int] = {}
        for index, (key_node, _) in enumerate(node.value):
            if isinstance(key_node, yaml.ScalarNode):
                last[key_node.value] = index
            else:
                self._issue(_mark(key_node), "yaml_unsupported", "mapping keys must be strings")
        out: dict[str, Any] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode) or last[key_node.value] != index:
                continue
            key: str = key_node.value
            if not _encodable(key):
                self._issue(_mark(key_node), "yaml_unsupported", "key is not valid Unicode")
                continue
            self.keys[(*path, key)] = _mark(key_node)
            out[key] = self._data(value_node, (*path, key), depth + 1, active)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: _Path, pos: _Pos) -> Any:
        tag = node.tag
        text: str = node.value
        if tag in (_STR_TAG, _TIMESTAMP_TAG):
            # Timestamps stay strings: the policy is JSON data, and "2026-11-21" is a version or
            # a date the way it was written.
            if not _encodable(text):
                self._bad_value(
                    path, pos, "yaml_unsupported", "string is not valid Unicode (surrogate)"
                )
            return text
        if tag not in _CONSTRUCTED_TAGS:
            self._bad_value(path, pos, "yaml_unsupported", f"unsupported YAML tag {_tag(tag)}")
            return None
        self.raw[path] = text
        try:
            value = yaml.SafeLoader.yaml_constructors[tag](self.constructor, node)
        except (ValueError, KeyError, TypeError, IndexError):
            self._bad_value(
                path, pos, "yaml_unsupported", f"{text!r} is not a valid {tag[len(_TAG) :]}"
            )
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._bad_value(path, pos, "invalid_value", f"{text!r}: .inf and .nan are not allowed")
            return None
        if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
            self._bad_value(path, pos, "invalid_value", f"integer {text} is out of range (64 bits)")
            return None
        return value

    # -- step 3: the frame ---------------------------------------------------------------------

    def _validate_frame(self, doc: Any) -> None:
        handled_required: set[_Path] = set()
        for error in _validator().iter_errors(doc):
            path: _Path = tuple(error.absolute_path)
            if self._is_bad(path):
                continue
            keyword = error.validator
            if keyword == "additionalProperties" and isinstance(error.instance, dict):
                allowed = list(_schema(error).get("properties", {}))
                for key in error.instance:
                    if key not in allowed:
                        self._issue(
                            self._pos((*path, key), key=True),
                            "unknown_key",
                            f"unknown key {key!r} {_in(path)}{did_you_mean(key, allowed)}",
                        )
            elif keyword == "required" and isinstance(error.instance, dict):
                if path in handled_required:
                    continue
                handled_required.add(path)
                required: Any = error.validator_value
                for key in required:
                    if key not in error.instance:
                        self._issue(
                            self._pos(path), "missing_key", f"missing key {key!r} {_in(path)}"
                        )
            elif keyword == "type":
                self._issue(self._pos(path), "invalid_type", self._type_message(error, path))
            else:
                self._issue(self._pos(path), "invalid_value", _value_message(error, path))

    def _type_message(self, error: ValidationError, path: _Path) -> str:
        expected: Any = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_SCHEMA_TYPES.get(n, n) for n in names)
        got = _JSON_TYPES.get(type(error.instance), type(error.instance).__name__)
        if not path:
            return (
                f"a policy file must be a mapping with apiVersion, kind, metadata and spec; "
                f"got {got}"
            )
        message = f"{_dotted(path)}: expected {want}, got {got}"
        if names == ["string"] and path in self.raw:
            message += f' (quote it: "{self.raw[path]}")'
        return message

    # -- step 4: the checks --------------------------------------------------------------------

    def _build_checks(self, doc: Any) -> tuple[CompiledCheck, ...] | None:
        spec = doc.get("spec") if isinstance(doc, dict) else None
        entries = spec.get("checks") if isinstance(spec, dict) else None
        if not isinstance(entries, list):
            return None
        roles_raw = spec.get("roles") if isinstance(spec, dict) else None
        roles = frozenset(
            r for r in (roles_raw if isinstance(roles_raw, list) else ()) if isinstance(r, str)
        )
        policy_mode = spec.get("mode", "enforce") if isinstance(spec, dict) else "enforce"
        first_seen: dict[str, _Pos] = {}
        compiled: list[CompiledCheck] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue  # the schema reported it
            check = self._build_check(index, entry, roles, policy_mode, first_seen)
            if check is not None:
                compiled.append(check)
        return tuple(compiled)

    def _build_check(
        self,
        index: int,
        entry: dict[str, Any],
        roles: frozenset[str],
        policy_mode: Any,
        first_seen: dict[str, _Pos],
    ) -> CompiledCheck | None:
        base: _Path = ("spec", "checks", index)
        check_id = entry.get("id")
        if isinstance(check_id, str):
            if check_id in first_seen:
                line, column = first_seen[check_id]
                self._issue(
                    self._pos((*base, "id")),
                    "duplicate_id",
                    f"duplicate check id {check_id!r} (first used at line {line}, "
                    f"column {column}); check ids must be unique",
                )
            else:
                first_seen[check_id] = self._pos((*base, "id"))
        use = entry.get("use")
        if not isinstance(use, str):
            return None
        kind = self.kinds.get(use)
        if kind is None:
            self._issue(
                self._pos((*base, "use")),
                "unknown_kind",
                f"unknown check kind {use!r}{did_you_mean(use, self.kinds.keys())}",
            )
            return None
        label = f"check {check_id!r} ({use})" if isinstance(check_id, str) else f"check ({use})"
        raw_params = {k: v for k, v in entry.items() if k not in RESERVED_KEYS}
        try:
            params = kind.params.model_validate(raw_params)
        except PydanticValidationError as exc:
            self._param_errors(exc, base, label, kind.params.model_fields)
            return None
        ctx = LoadContext(
            policy_path=self.path,
            base_dir=self.base_dir,
            roles=roles,
            check_id=check_id if isinstance(check_id, str) else f"#{index}",
            files=self.files,
        )
        try:
            fn = kind.build(params, ctx)
        except CheckBuildError as exc:
            for issue in exc.issues:
                self._issue(self._pos((*base, *issue.loc)), issue.code, issue.message)
            return None
        except Exception as exc:  # a kind's own validation (a bad regex, say) is a policy problem
            self._issue(
                self._pos(base),
                "check_build",
                f"{label} could not be built: {type(exc).__name__}: {exc}",
            )
            return None
        if not callable(fn):
            self._issue(
                self._pos(base), "check_build", f"{label}: kind {use!r} did not return a callable"
            )
            return None
        try:
            when = When.from_spec(entry.get("when"))
        except (ValueError, TypeError, AttributeError):
            return None  # the schema reported it
        mode = entry.get("mode", policy_mode)
        if mode not in ("enforce", "monitor") or not isinstance(check_id, str):
            return None  # the schema reported it
        description = entry.get("description")
        checked_mode: Mode = "enforce" if mode == "enforce" else "monitor"
        return CompiledCheck(
            id=check_id,
            kind=use,
            mode=checked_mode,
            when=when,
            fn=fn,
            params=params,
            description=description if isinstance(description, str) else "",
        )

    def _param_errors(
        self,
        exc: PydanticValidationError,
        base: _Path,
        label: str,
        fields: Mapping[str, Any],
    ) -> None:
        names = [f.alias or name for name, f in fields.items()]
        for err in exc.errors(include_url=False, include_context=False, include_input=False):
            loc: _Path = tuple(err["loc"])
            if self._is_bad((*base, *loc)):
                continue
            where = ".".join(str(p) for p in loc)
            if err["type"] == "extra_forbidden" and loc:
                key = str(loc[-1])
                hint = did_you_mean(key, [*names, *RESERVED_KEYS]) if len(loc) == 1 else ""
                self._issue(
                    self._pos((*base, *loc), key=True),
                    "unknown_param",
                    f"{label}: unknown parameter {where!r}{hint}",
                )
            elif err["type"] == "missing":
                self._issue(
                    self._pos((*base, *loc[:-1])),
                    "missing_param",
                    f"{label}: missing required parameter {where!r}",
                )
            else:
                self._issue(
                    self._pos((*base, *loc)),
                    "invalid_param",
                    f"{label}: {where or 'parameters'}: {err['msg']}",
                )


class _TooLarge(Exception):
    pass


_FAILED: Final = object()  # the YAML could not be read at all: nothing else to check


def _mark(node: yaml.Node) -> _Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "invalid YAML"


def _dotted(path: _Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _in(path: _Path) -> str:
    return f"in {_dotted(path)}" if path else "at top level"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _value_message(error: ValidationError, path: _Path) -> str:
    where = _dotted(path) or "document"
    keyword = error.validator
    value: Any = error.validator_value
    instance = error.instance
    if keyword == "const":
        return f"{where}: must be '{value}', got {_short(instance)}"
    if keyword == "enum":
        allowed = [str(v) for v in value]
        hint = did_you_mean(instance, allowed) if isinstance(instance, str) else ""
        return f"{where}: {_short(instance)} is not one of {', '.join(allowed)}{hint}"
    if keyword == "pattern":
        explain = _schema(error).get("description")
        return f"{where}: {_short(instance)} is not allowed" + (
            f" ({explain})" if explain else f" (must match {value})"
        )
    if keyword == "uniqueItems":
        return f"{where}: items must be unique"
    if keyword == "minItems":
        return f"{where}: needs at least {value} item(s)"
    if keyword == "minLength":
        return f"{where}: must not be empty"
    if keyword == "maxLength":
        return f"{where}: longer than {value} characters"
    return f"{where}: {error.message}"
