"""What each check kind reads, so a policy can be replayed honestly on audit records.

A decision record keeps the message's type, sender, recipient and classification as columns;
depending on the orchestrator's payload storage it also keeps the envelope's header (actor,
metadata, ``to``, ...) and the payload (``full``), or the payload with personal data replaced by
``[REDACTED:<entity>]`` markers (``redacted``), or only the payload's sha256 (``hash``), or
nothing more (``none``, and records written before envelopes were kept). A check can only be
replayed on a record that holds everything the check reads; replaying it on less would report
changes that are artefacts of the missing data.

:data:`KIND_REPLAY` is the one place that says, per built-in kind, which facts beyond the
columns and the agent cards it reads. A kind that is not listed (a custom kind) is never
replayed: it is reported as not replayable rather than guessed at. ``tests/unit/orchestrator/
test_replay.py`` fails when a kind is registered without an entry here.

Example:
    >>> from govbus.policy import parse_policy
    >>> policy = parse_policy('''
    ... apiVersion: govbus/v1
    ... kind: Policy
    ... metadata: {name: tiny, version: "1"}
    ... spec:
    ...   checks:
    ...     - {id: who, use: rbac, rules: [{types: ["*"], roles: [advisor]}]}
    ...     - {id: personal-data, use: pii}
    ... ''')
    >>> [sorted(replay_inputs(c) or ()) for c in policy.checks]
    [['envelope'], ['envelope', 'payload_exact']]
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple, TypeAlias

from govbus.policy.engine import CompiledCheck

__all__ = ["KIND_REPLAY", "Fact", "KindReplay", "replay_inputs"]

#: A fact a check may read beyond the record's columns (type, sender, recipient,
#: classification, time) and the current agent cards:
#:
#: - ``envelope``: the envelope's header: actor (subject, roles, tenant), metadata, ``to``;
#: - ``payload``: the payload; a redacted one will do, with the kind's caveat;
#: - ``payload_exact``: the payload exactly as sent (only ``full`` storage keeps it);
#: - ``cause``: the actor of the message this one answers, found among the records read;
#: - ``ledger``: the consent store configured in the replaying process;
#: - ``state``: state built from earlier traffic that no record holds (never available).
Fact: TypeAlias = Literal["envelope", "payload", "payload_exact", "cause", "ledger", "state"]


class KindReplay(NamedTuple):
    """What one check kind needs to be replayed.

    Attributes:
        reads: the facts it reads beyond the columns and the cards.
        redacted: for a kind that reads the payload: what ``[REDACTED:<entity>]`` markers do
            to its result (a caveat printed with the report), or why it cannot be compared at
            all (for ``payload_exact`` kinds).
    """

    reads: frozenset[Fact]
    redacted: str = ""


def _reads(*facts: Fact) -> frozenset[Fact]:
    return frozenset(facts)


#: Built-in kinds -> what they read. Keep one entry per registered kind, with the reason.
KIND_REPLAY: Final[Mapping[str, KindReplay]] = MappingProxyType(
    {
        # The message's classification and the recipient card's clearance: columns and cards.
        "classification_ceiling": KindReplay(_reads()),
        # The purpose in metadata and, with ``ledger: true``, the actor's consent in the
        # consent store (added by replay_inputs): replayed against the ledger as it is now,
        # asked about the record's time.
        "consent": KindReplay(_reads("envelope")),
        # Whether the output sits below its cause's classification: the record keeps the
        # cause's level (``declassified_from``) when a lowering was permitted; the actor's
        # roles (``require_roles``) are in the envelope.
        "declassify": KindReplay(_reads("envelope")),
        # The sender card's risk and a rationale string in the payload. Redaction replaces
        # personal data inside the rationale, so its length can differ slightly.
        "explainability": KindReplay(
            _reads("payload"),
            "a rationale holding personal data is measured with its redaction markers",
        ),
        # Validates the payload. Types and structure survive redaction; string constraints
        # (pattern, minLength, maxLength, enum) on a field holding personal data see the marker.
        "json_schema": KindReplay(
            _reads("payload"),
            "string constraints (pattern, length, enum) on fields holding personal data see "
            "the redaction marker instead",
        ),
        # The size of payload plus metadata (or of the whole envelope): redaction changes the
        # size, so only the exact payload will do. ``measure: envelope`` also counts the
        # signature, which no record keeps.
        "length": KindReplay(
            _reads("envelope", "payload_exact"),
            "redaction markers change the size of the content it measures",
        ),
        # Scans every payload string and metadata value for personal data: on a redacted
        # payload it would see the markers, not the data, so only the exact payload will do.
        "pii": KindReplay(
            _reads("envelope", "payload_exact"),
            "it would see the redaction markers, not the personal data it looks for",
        ),
        # Scores the text of the payload and metadata. Markers replace personal data, which
        # is rarely part of an injection; a pattern that spans one can score differently.
        "prompt_injection": KindReplay(
            _reads("envelope", "payload"),
            "text patterns that span personal data see the redaction marker instead",
        ),
        # Token buckets filled and spent by all earlier traffic, per process: no record holds
        # that state, and rebuilding it from the records of one window would be a guess.
        "rate_limit": KindReplay(_reads("state")),
        # The actor's roles (envelope) against the message type and sender (columns).
        "rbac": KindReplay(_reads("envelope")),
        # Metadata keys.
        "required_metadata": KindReplay(_reads("envelope")),
        # The region in metadata and the recipient card's region.
        "residency": KindReplay(_reads("envelope")),
        # The recipient card's risk and the actor's roles.
        "risk_ceiling": KindReplay(_reads("envelope")),
        # Sender and type (columns), the recipient card's name, or ``to`` for a client.
        "routes": KindReplay(_reads("envelope")),
        # The actor's tenant, the recipient card's tenant tags, and the tenant of the message
        # that caused this one (an agent's output): the cause's record must be among those read.
        "tenant_isolation": KindReplay(_reads("envelope", "cause")),
    }
)


def replay_inputs(
    check: CompiledCheck, table: Mapping[str, KindReplay] = KIND_REPLAY
) -> frozenset[Fact] | None:
    """The facts ``check`` reads beyond the record's columns and the agent cards, or None when
    its kind has no entry in ``table`` (it cannot be replayed).

    Parameters refine the kind's entry where they change what is read: a ``consent`` check
    with ``ledger: true`` also reads the consent ledger.
    """
    entry = table.get(check.kind)
    if entry is None:
        return None
    reads = entry.reads
    if check.kind == "consent" and getattr(check.params, "ledger", False):
        reads = reads | {"ledger"}
    return reads
