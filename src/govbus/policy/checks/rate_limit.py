"""``rate_limit``: a token bucket per actor, sender or tenant.

```yaml
- id: per-user-rate
  use: rate_limit
  rate: 5            # tokens added per second
  burst: 20          # bucket size: how many messages may arrive at once
  per: actor         # actor (actor.subject) | sender (the from field) | tenant (actor.tenant)
  types: ["portfolio.*"]   # only these message types spend tokens (default: every type)
  max_keys: 100000   # buckets kept in memory; the least recently used are evicted past this
```

Each key starts with a full bucket of ``burst`` tokens; a message spends one token, and tokens
come back at ``rate`` per second up to ``burst``. A message without an actor (or, with
``per: tenant``, without a tenant) is counted under the one shared key ``anonymous``, so
unidentified traffic is limited as a whole rather than not at all.

Time is the evaluation's ``now`` (the orchestrator's clock), so tests and replays drive it
without sleeping; a clock that steps back never adds tokens.

**Once per message, not once per recipient.** The policy is evaluated once per recipient, so
a message fanned out to N agents would otherwise cost N tokens. The check remembers the verdict
for the last :data:`DEDUPE_IDS` message ids, with the clock reading it was given: a later
evaluation of the same id at the same ``now`` (the orchestrator reads its clock once per
dispatch) gets the same verdict and spends nothing. The same id at another time is a new
request and pays again: ids are chosen by senders, so "seen this id before" alone would let a
client reuse one id to send without limit.

The state (buckets and recent ids) lives in the built check, with bounded memory. An evicted
key comes back with a full bucket, so ``max_keys`` should exceed the number of keys active
within ``burst / rate`` seconds.

The evidence of a ``rate_limited`` denial holds the key kind, a sha256 prefix of the key
(enough to correlate denials of one subject in the audit log) and ``retry_after_s``, never the
raw subject, sender or tenant: identities stay out of audit evidence.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Final, Literal

from pydantic import Field, StrictFloat, StrictInt

from govbus.envelope import TypePattern
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext, TypeGlob, join_or
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

#: How many recent message ids (with their verdicts) the per-message dedupe remembers.
DEDUPE_IDS: Final = 4096

#: The shared key for messages with no actor (or no tenant, with ``per: tenant``).
ANONYMOUS: Final = "anonymous"

#: Hex characters of the key's sha256 kept in evidence: enough to correlate, not to enumerate.
_KEY_DIGEST_CHARS: Final = 16


class RateLimitParams(CheckParams):
    """Parameters of ``rate_limit``.

    Attributes:
        rate: tokens added per second (> 0).
        burst: bucket size, the most messages a key may send at once (>= 1).
        per: what a bucket belongs to: ``actor`` (actor.subject), ``sender`` (the ``from``
            field) or ``tenant`` (actor.tenant).
        types: message type globs that spend tokens; other types pass untouched.
        max_keys: buckets kept in memory before the least recently used are evicted.
    """

    rate: StrictFloat = Field(gt=0, allow_inf_nan=False)
    burst: StrictInt = Field(ge=1)
    per: Literal["actor", "sender", "tenant"] = "actor"
    types: list[TypeGlob] = Field(default_factory=lambda: ["*"], min_length=1)
    max_keys: StrictInt = Field(default=100_000, ge=1)


def _describe(params: RateLimitParams) -> list[str]:
    return [
        f"Limit: {params.rate:g} messages per second per {params.per}, bursts of up to "
        f"{params.burst}, for types {join_or(params.types)}."
    ]


@CHECK_KINDS.register(
    "rate_limit",
    params=RateLimitParams,
    describe=_describe,
    summary=(
        "Limit how fast each actor, sender or tenant may send messages (a token bucket: "
        "rate per second, burst at once); a message counts once however many recipients it has."
    ),
)
def build(params: RateLimitParams, ctx: LoadContext) -> CheckFn:
    """Build the ``rate_limit`` check with empty state."""
    return _RateLimiter(params)


class _RateLimiter:
    """The built check: buckets per key and recent verdicts per message id."""

    def __init__(self, params: RateLimitParams) -> None:
        self._rate = params.rate
        self._burst = float(params.burst)
        self._per = params.per
        self._types = TypePattern(params.types)
        self._all_types = self._types.matches_everything
        self._max_keys = params.max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # message id -> (the evaluation time it was charged at, its verdict)
        self._recent: OrderedDict[str, tuple[datetime, Decision]] = OrderedDict()
        # Nothing stops a caller from evaluating one policy from several threads, and a bucket
        # update is a read-modify-write.
        self._lock = threading.Lock()

    def __call__(self, inp: CheckInput) -> Decision:
        message = inp.message
        if not self._all_types and not self._types.matches(message.type):
            return ALLOW
        now = inp.now
        with self._lock:
            seen = self._recent.get(message.id)
            if seen is not None and seen[0] == now:  # another recipient of the same dispatch
                self._recent.move_to_end(message.id)
                return seen[1]
            verdict = self._spend(self._key(inp), now)
            self._recent[message.id] = (now, verdict)
            self._recent.move_to_end(message.id)
            if len(self._recent) > DEDUPE_IDS:
                self._recent.popitem(last=False)
            return verdict

    def _key(self, inp: CheckInput) -> str:
        actor = inp.message.actor
        if self._per == "sender":
            return inp.message.sender
        if actor is None:
            return ANONYMOUS
        if self._per == "actor":
            return actor.subject
        return actor.tenant if actor.tenant is not None else ANONYMOUS

    def _spend(self, key: str, now: datetime) -> Decision:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(self._burst, now)
            if len(buckets) > self._max_keys:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
            # Datetime arithmetic is exact to the microsecond; epoch floats are not.
            elapsed = (now - bucket.last).total_seconds()
            if elapsed > 0:  # a clock that steps back adds nothing
                bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
                bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return ALLOW
        retry_after = (1.0 - bucket.tokens) / self._rate
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_KEY_DIGEST_CHARS]
        return Deny(
            "rate_limited",
            f"rate limit exceeded for this {self._per} ({self._rate:g}/s, burst "
            f"{self._burst:g}); retry after {retry_after:.3f} s",
            {
                "key_kind": self._per,
                "key_sha256": digest,
                # Rounded up to the millisecond (float noise aside): waiting this long is enough.
                "retry_after_s": math.ceil(round(retry_after * 1000, 6)) / 1000,
            },
        )


class _Bucket:
    """One key's bucket: tokens left, and when they were last topped up."""

    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, last: datetime) -> None:
        self.tokens = tokens
        self.last = last
