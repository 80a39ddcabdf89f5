"""``NatsBus``: the :class:`~govbus.bus.base.Bus` over NATS JetStream, for more than one process
or machine.

Needs the ``nats`` extra (``pip install govbus[nats]``, which installs ``nats-py``) and a
``nats-server`` with JetStream enabled (``nats-server -js``); written against server 2.9, so it
uses one filter subject per consumer and keeps its own metadata in the consumer description.

Subjects, streams and buckets (``<prefix>`` is ``subject_prefix``, default ``govbus``;
``<stream>`` is ``stream``, default ``GOVBUS``):

=================================  ============================================================
Subject / object                   What it carries
=================================  ============================================================
``<prefix>.m.<address>.<type>``    Every published message, once: ``<address>`` is the escaped
                                   publish address (``_`` for none) and ``<type>`` the dotted
                                   message type, token for token (``portfolio.analyze``).
stream ``<stream>``                Captures ``<prefix>.m.>``: the work stream. Limits
                                   retention by default: a message stays ``max_age`` (default
                                   7 days) whether consumed or not; each consumer keeps its own
                                   position. (Interest retention, optional, drops a message
                                   that no consumer wants *at that moment*, and a restarted
                                   2.9 server recovers streams before their consumers: messages
                                   published in between were lost in our restart tests.)
consumer ``g_<group>``             A durable pull consumer per ``group``: every member, in any
                                   process, pulls from it (competing consumers).
consumer ``s_<node>_<n>``          A pull consumer per subscription without a group, removed
                                   on ``unsubscribe``/``close`` (and by the server after
                                   ``subscription_ttl`` seconds without a puller, if the
                                   process died).
``<prefix>.reply.<request id>``    Core NATS (not stored): a waiting ``request`` listens here;
                                   a publish of a message caused by that request notifies it.
stream ``<stream>_DLQ``            Dead letters, one message per entry on
                                   ``<prefix>_dlq.<entry id>`` (:class:`NatsDeadLetterStore`).
KV bucket ``govbus_idempotency``   Handled-message keys (:class:`NatsIdempotencyStore`).
=================================  ============================================================

*Escaping*: a subject token holds only ``A-Z a-z 0-9 -``; every other character (``_`` and
``.`` included) is written as ``_`` and two lowercase hex digits per UTF-8 byte, so
``_inbox.node-1`` becomes ``_5finbox_2enode-1`` and ``my_agent`` ``my_5fagent``. The token
``_`` alone means "no address" and ``_-`` the empty string. The escape is reversible, so the
delivery reports the exact address.

*Routing*: a consumer's filter subject is the NATS approximation of its route (the recipient
token, and the literal leading tokens of its type globs, then ``>``); the exact route (globs,
which may match across dots) is checked on delivery, and a message that matches the filter
but not the route is acked and skipped. The route, ``max_attempts`` and group are kept as JSON
in the consumer description, so every process knows every subscription's route.

Delivery semantics (as :mod:`govbus.bus.base` states them, with what JetStream adds):

* **Settlement**: explicit acks, sent after the handler. A handler that returns without
  settling acks; one that raises nacks. ``nack(delay=)`` naks with that delay, otherwise with
  a backoff growing per attempt (``redelivery_base * 2 ** (attempt - 1)``, at most
  ``redelivery_max``). Acks wait for the server's confirmation (retried through a reconnect),
  so an acked message is not redelivered unless the confirmation never came.
* **Attempts**: ``Delivery.attempt`` (and ``message.attempt``) is JetStream's delivery count.
  A nack on attempt ``max_attempts``, or ``term(reason)`` at any attempt, writes the message to
  the dead-letter store with the cause and then acks it on the work stream. The consumer's
  ``max_deliver`` is ``max_attempts + 3``. A message whose last delivery was never settled
  (its process died, or ``ack_wait`` passed) is handed to a handler again, up to two
  deliveries past ``max_attempts``, so a killed worker's work moves to another member; the
  last extra delivery only dead-letters (without calling the handler), as it does for a
  message whose dead-lettering failed, so nothing is left behind.
* **Long handlers**: while a handler runs, the message is marked in progress every
  ``ack_wait / 3`` seconds, so the server does not redeliver it to another member.
* **Unroutable publishes** are refused: ``publish`` raises ``NoSubscriberError`` unless some
  consumer's route (in any process; the list is cached for ``route_ttl`` seconds and re-read
  before refusing) matches, or a ``request`` in some process is waiting for this message. A
  durable group's consumer outlives its members, so its messages are kept for the next one.
* **Publishing** waits for the stream's acknowledgement and retries through reconnects until
  ``publish_timeout``; then it raises ``BusUnavailableError`` naming the server. The header
  ``Nats-Msg-Id`` is ``<message id>@<address>``: a re-publish of the same message to the same
  address within the stream's ``duplicate_window`` is dropped by the server (one message may
  still go to several addresses). ``traceparent``/``tracestate`` from the metadata are copied
  into NATS headers.
* **Receiver-side idempotency**: JetStream is at-least-once (an ack lost with a crashed or
  restarted server means a redelivery); :class:`NatsIdempotencyStore` lets handlers in every
  process see a redelivered message as already handled. Its calls retry through a reconnect
  (up to the bus's ``publish_timeout``), and a claim carries a token of its own, so a claim
  retried after its first answer was lost is recognised as ours, not dropped as a duplicate.
* **Backpressure** is not modelled per consumer: the stream holds what consumers have not
  taken yet, and ``publish`` does not wait for them.
* **unsubscribe()** stops pulling and lets the delivery in flight finish. A group member's
  unhandled messages go back to the group's consumer (nak); a subscription without a group
  cannot be rejoined, so what it and its consumer still hold is dead-lettered (cause
  ``"subscription ... cancelled before delivery"``) and the consumer is deleted.
* **close()** refuses new subscriptions, keeps pulling and handling until no subscription has
  anything left (no message available, none held, none in flight; for a subscription without a
  group also no nack-delayed redelivery pending), while still accepting publishes (replies of
  handlers in flight), then refuses publishes and closes the connection. After
  ``drain_timeout`` it stops anyway: messages still held go back to a group's consumer (or are
  dead-lettered, without a group), handlers still running are cancelled (their messages are
  redelivered), and the count is kept in :attr:`NatsBus.abandoned` and logged; messages left in
  a durable group's consumer wait for the group.
* Logs (logger ``govbus.bus.nats``) name message ids, types, subjects and exception class names
  only, never payload content.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from govbus.bus.base import DeadLetter, DeliveryHandler, DeliveryState, Route, Subscription
from govbus.bus.deadletter import (
    MIN_PREFIX,
    DeadLetterStore,
    _check_limit,
    _checked,
    _missing,
    _not_found,
    _pick,
    _sort_key,
    _too_short,
)
from govbus.envelope import TRACEPARENT, TRACESTATE, Message, TypePattern
from govbus.errors import (
    BusClosedError,
    BusError,
    BusUnavailableError,
    ConfigError,
    DeadLetterError,
    DeadLetterNotFoundError,
    EnvelopeError,
    GovbusError,
    NoSubscriberError,
    RequestTimeoutError,
)

__all__ = [
    "NatsBus",
    "NatsDeadLetterStore",
    "NatsIdempotencyStore",
    "decode_token",
    "encode_token",
    "filter_subject",
]

logger = logging.getLogger("govbus.bus.nats")

_T = TypeVar("_T")

#: Deliveries a consumer allows beyond ``max_attempts``: used only to dead-letter a message
#: whose last attempt was never settled, or whose dead-lettering failed.
_EXTRA_DELIVERIES: Final = 3
#: Seconds added to a pull request's expiry before it is presumed lost (reconnect, restart).
_PULL_MARGIN: Final = 1.0
#: Seconds between polls of a drained subscription while ``close()`` drains.
_DRAIN_POLL: Final = 0.02
#: The longest a single NATS request (publish, ack, API call) may take before it is retried.
_ATTEMPT_TIMEOUT: Final = 2.0
#: Consumers per page of the server's consumer list.
_LIST_PAGE: Final = 256
#: Dead letters whose failed write a subscription remembers, to retry it with the same cause.
_UNWRITTEN_MAX: Final = 10_000
#: Prefix of the consumer description that holds a govbus route.
_DESCRIPTION_PREFIX: Final = "govbus:"
#: The NATS ``Status`` header values a pull request ends with.
_NO_MESSAGES: Final = "404"
_REQUEST_TIMEOUT: Final = "408"
_HEARTBEAT: Final = "100"

_TOKEN_PLAIN = re.compile(r"[A-Za-z0-9-]+\Z")
_TOKEN_ESCAPE = re.compile(r"[^A-Za-z0-9-]+")
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")
_SAFE_HEADER = re.compile(r"[\x21-\x7e]{1,256}\Z")
_SAFE_TRACE = re.compile(r"[\x20-\x7e]{1,512}\Z")

#: The worker task whose handler is running, visible to tasks the handler starts.
_running_worker: ContextVar[asyncio.Task[None] | None] = ContextVar(
    "govbus_nats_running_worker", default=None
)

# Failures that may pass when tried again (the server is restarting, a reconnect is under way).
_TRANSIENT: Final[tuple[type[BaseException], ...]] = (
    TimeoutError,  # nats.errors.TimeoutError and FlushTimeoutError are TimeoutErrors
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)

# What the retry loops handle: transient failures are retried, a closed connection is final.
_TRANSIENT_OR_CLOSED: Final[tuple[type[BaseException], ...]] = (
    *_TRANSIENT,
    nats.errors.ConnectionClosedError,
)


# --------------------------------------------------------------------------------------------
# Subjects


def encode_token(value: str | None) -> str:
    """``value`` as one valid NATS subject token (reversible; see the module docstring).

    Example:
        >>> encode_token("analyzer"), encode_token("_inbox.node-1"), encode_token(None)
        ('analyzer', '_5finbox_2enode-1', '_')
    """
    if value is None:
        return "_"
    if value == "":
        return "_-"
    if _TOKEN_PLAIN.match(value):
        return value
    # Runs of other characters at once (every claim key, ``agent:message id``, has one):
    # UTF-8 encodes code point by code point, so a run's bytes are its characters' in order.
    return _TOKEN_ESCAPE.sub(_escape_run, value)


def _escape_run(match: re.Match[str]) -> str:
    return _escaped(match.group())


@functools.lru_cache(maxsize=1024)
def _escaped(run: str) -> str:
    return "".join([f"_{byte:02x}" for byte in run.encode("utf-8", "surrogatepass")])


def decode_token(token: str) -> str | None:
    """The value :func:`encode_token` turned into ``token``.

    Raises:
        ValueError: ``token`` is not something :func:`encode_token` makes.

    Example:
        >>> decode_token("_5finbox_2enode-1")
        '_inbox.node-1'
    """
    if token == "_":
        return None
    if token == "_-":
        return ""
    if "_" not in token:
        return token
    out = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char == "_":
            pair = token[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdef" for c in pair):
                raise ValueError(f"invalid escaped subject token {token!r}")
            out.append(int(pair, 16))
            i += 3
        else:
            out.extend(char.encode("ascii"))
            i += 1
    return out.decode("utf-8", "surrogatepass")


def _glob_tokens(pattern: str) -> tuple[list[str], bool]:
    """The literal leading tokens of a type glob, and whether the glob is one exact type."""
    tokens: list[str] = []
    for segment in pattern.split("."):
        if not segment or "*" in segment or "?" in segment:
            return tokens, False
        tokens.append(segment)
    return tokens, True


def _types_filter(patterns: tuple[str, ...]) -> list[str]:
    """Subject tokens matching at least every type that one of ``patterns`` matches."""
    parsed = [_glob_tokens(p) for p in patterns]
    first, first_exact = parsed[0]
    if all(p == parsed[0] for p in parsed):
        return first if first_exact else [*first, ">"]
    common: list[str] = []
    for column in zip(*(tokens for tokens, _ in parsed), strict=False):
        if any(token != column[0] for token in column):
            break
        common.append(column[0])
    # ``a.>`` does not match the type ``a`` itself: an exact pattern equal to the common prefix
    # needs a shorter one.
    if any(exact and tokens == common for tokens, exact in parsed):
        common = common[:-1]
    return [*common, ">"]


def filter_subject(prefix: str, route: Route) -> str:
    """The JetStream filter subject of a consumer for ``route`` (a superset of the route).

    Example:
        >>> filter_subject("govbus", Route("analyzer", TypePattern("portfolio.*")))
        'govbus.m.analyzer.portfolio.>'
        >>> filter_subject("govbus", Route(None, TypePattern(["risk.score", "risk.limit"])))
        'govbus.m.*.risk.>'
    """
    address = "*" if route.recipient is None else encode_token(route.recipient)
    tail = [">"] if route.types is None else _types_filter(route.types.patterns)
    return ".".join([prefix, "m", address, *tail])


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _reason(exc: BaseException | None) -> str:
    """A short description of a NATS failure, for error messages (never payload content)."""
    if exc is None:
        return "no reason given"
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
        return "no responders (JetStream not enabled or not ready, or no stream for the subject)"
    if isinstance(exc, TimeoutError):
        return f"timed out ({name})"
    if not text or text == name:
        return name
    return f"{name}: {text}"


def _counts(msg: Msg) -> tuple[int, int]:
    """``(deliveries, stream sequence)`` of a JetStream message, from its ack subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>``)
    without building nats-py's ``Msg.metadata`` (a dataclass and a datetime per message);
    other subject forms go through ``Msg.metadata``, which raises for a non-JetStream one."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[4]), int(tokens[5])
    metadata = msg.metadata
    return metadata.num_delivered, metadata.sequence.stream


def _named(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def _status(msg: Msg) -> str | None:
    headers = msg.headers
    if not headers:
        return None
    return headers.get("Status")


# --------------------------------------------------------------------------------------------
# Request / reply on the connection


#: Granularity (seconds) of request timeouts: requests that expire in the same slot share one
#: timer, so a request is late by at most this much.
_TIMER_SLOT: Final = 0.05


class _Replies:
    """Requests that wait for one answer (stream publishes, confirmed acks, key-value writes)
    over one wildcard reply subscription per connection.

    Why not ``Client.request`` / ``JetStreamContext.publish``: per call they make a NUID token,
    a done callback and an ``asyncio.wait_for`` (a second future, a timer, a callback chain),
    and a publish parses its answer with ``json`` into a dataclass. A governed message makes
    four such requests (publish, idempotency claim, done mark, confirmed ack), so they were the
    largest part of the bus's own time; measured alone, a JetStream publish costs about 40%
    less CPU here. A request is one future and a counter token; timeouts share one timer per
    ``_TIMER_SLOT`` (a timer created and cancelled per request was 8% of a profile's samples).
    Semantics are the same: the answer, or ``nats.errors.TimeoutError`` once ``timeout`` has
    passed, ``NoRespondersError`` when the server says nothing listens (status 503). nats-py
    restores the subscription on reconnect; an answer lost with a connection times out, and
    callers retry as they did.
    """

    __slots__ = ("_cut", "_nc", "_next", "_prefix", "_slots", "_sub", "_waiting")

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox() + "."
        self._cut = len(self._prefix)
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._slots: dict[int, list[str]] = {}
        self._next = 0
        self._sub: CoreSubscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_answer)

    async def _on_answer(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[self._cut :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _expire(self, slot: int) -> None:
        for token in self._slots.pop(slot, ()):
            future = self._waiting.pop(token, None)
            if future is not None and not future.done():
                future.set_exception(nats.errors.TimeoutError())

    def _send(self, timeout: float) -> tuple[str, asyncio.Future[Msg]]:
        """A token and future for one request, its expiry scheduled."""
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = future
        slot = math.ceil((loop.time() + timeout) / _TIMER_SLOT)
        tokens = self._slots.get(slot)
        if tokens is None:
            tokens = self._slots[slot] = []
            loop.call_at(slot * _TIMER_SLOT, self._expire, slot)
        tokens.append(token)
        return token, future

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """Publish ``payload`` to ``subject`` and return the first answer.

        Raises:
            nats.errors.TimeoutError: no answer within ``timeout`` seconds (up to
                ``_TIMER_SLOT`` later).
            nats.errors.NoRespondersError: the server says nothing listens on ``subject``.
            nats.errors.Error: the publish itself failed (closed, buffer full, too large).
        """
        token, future = self._send(timeout)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await future
        finally:
            self._waiting.pop(token, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise nats.errors.NoRespondersError
        return msg

    async def publish(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A JetStream publish: the stream's acknowledgement (``{"stream", "seq",
        "duplicate"?}``), or the stream's error raised as ``nats.js.errors.APIError``.

        The same steps as :meth:`request`, not a call to it: every coroutine suspended while a
        message is in flight is one more object for the garbage collector to track and move,
        and with hundreds of messages in flight that showed in the profile.
        """
        token, future = self._send(timeout)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await future
        finally:
            self._waiting.pop(token, None)
        if msg.headers and msg.headers.get("Status") == "503":
            raise nats.js.errors.NoStreamResponseError
        answer: dict[str, Any] = orjson.loads(msg.data)
        error = answer.get("error")
        if error is not None:
            nats.js.errors.APIError.from_error(error)  # raises the typed error
        return answer


# --------------------------------------------------------------------------------------------
# Consumers


@dataclass(frozen=True, slots=True)
class _ConsumerSpec:
    """What a govbus consumer is for, kept as JSON in its description."""

    route: Route
    max_attempts: int
    group: str | None

    def describe(self) -> str:
        data = {
            "v": 1,
            "recipient": self.route.recipient,
            "types": None if self.route.types is None else list(self.route.types.patterns),
            "max_attempts": self.max_attempts,
            "group": self.group,
        }
        return _DESCRIPTION_PREFIX + json.dumps(data, separators=(",", ":"))

    @classmethod
    def parse(cls, description: str | None) -> _ConsumerSpec | None:
        """The spec a description holds, or None for a consumer govbus did not create."""
        if not description or not description.startswith(_DESCRIPTION_PREFIX):
            return None
        try:
            data = json.loads(description[len(_DESCRIPTION_PREFIX) :])
            types = data.get("types")
            route = Route(
                recipient=data.get("recipient"),
                types=None if types is None else TypePattern(types),
            )
            return cls(route, int(data["max_attempts"]), data.get("group"))
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("consumer description %r is not a govbus route; ignored", description)
            return None


def _consumer_name(group: str) -> str:
    token = encode_token(group)
    if len(token) > 100:
        token = "h" + hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"g_{token}"


# --------------------------------------------------------------------------------------------
# Deliveries and subscriptions


class _Held:
    """A message this process holds (buffered or in flight), kept alive while it waits."""

    __slots__ = ("msg", "since")

    def __init__(self, msg: Msg, since: float) -> None:
        self.msg = msg
        self.since = since


class _NatsDelivery(DeliveryState):
    """One delivery attempt of one message to one subscription.

    Implements :class:`~govbus.bus.base.Delivery`. Settling twice is a no-op: the first
    ``ack``/``nack``/``term`` wins.
    """

    __slots__ = ("_held", "_sub")

    def __init__(
        self,
        sub: _NatsSubscription,
        held: _Held,
        message: Message,
        address: str | None,
        attempt: int,
    ) -> None:
        self._sub = sub
        self._held = held
        super().__init__(message, address, attempt)

    async def ack(self) -> None:
        """The message is done; it will not be delivered again. No-op if already settled."""
        if not self._settled:
            self._settled = True
            await self._sub._ack(self._held.msg)

    async def nack(self, *, delay: float | None = None, reason: str = "") -> None:
        """Redeliver after ``delay`` seconds (default: backoff) with ``attempt + 1``, or
        dead-letter if this was the last attempt. No-op if already settled."""
        if not self._settled:
            self._settled = True
            await self._sub._nacked(self, delay, reason)

    async def term(self, reason: str) -> None:
        """Dead-letter the message now with ``reason``. No-op if already settled."""
        if not self._settled:
            self._settled = True
            await self._sub._dead_letter(self, reason)

    def __repr__(self) -> str:
        state = "settled" if self._settled else "open"
        return (
            f"<Delivery {self._message.id} type={self._message.type} "
            f"attempt={self._attempt} {state}>"
        )


class _NatsSubscription:
    """Implements :class:`~govbus.bus.base.Subscription` for :class:`NatsBus`.

    One pull request at a time asks the consumer for as many messages as there are free
    handler slots; received messages go to a local queue that ``concurrency`` workers take
    from. A core NATS subscription on a private inbox receives the pulled messages.
    """

    def __init__(
        self,
        bus: NatsBus,
        *,
        name: str,
        consumer: str,
        spec: _ConsumerSpec,
        durable: bool,
        handler: DeliveryHandler,
        concurrency: int,
    ) -> None:
        self._bus = bus
        self._name = name
        self._consumer = consumer
        self._spec = spec
        self._durable = durable
        self._handler = handler
        self._concurrency = concurrency
        self._max_attempts = spec.max_attempts
        self._queue: asyncio.Queue[_Held] = asyncio.Queue()
        self._held: dict[int, _Held] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self._credit = 0
        self._got = 0
        self._last_status: str | None = None
        self._room = asyncio.Event()
        self._request_done = asyncio.Event()
        self._stopping = False
        self._stopped = False
        self._gone = False
        self._delayed: set[int] = set()
        # Stream sequence -> (attempts, cause) of dead letters the store refused: when the
        # message comes again, only the write is retried.
        self._unwritten: dict[int, tuple[int, str]] = {}
        self._polls = 0
        self._idle = False
        self._inbox = ""
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{bus.stream}.{consumer}"
        self._core: CoreSubscription | None = None
        self._puller: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def route(self) -> Route:
        return self._spec.route

    @property
    def group(self) -> str | None:
        return self._spec.group

    @property
    def consumer(self) -> str:
        """The JetStream consumer this subscription pulls from."""
        return self._consumer

    # -- lifecycle -------------------------------------------------------------------------

    async def _start(self) -> None:
        nc = self._bus._client()
        self._inbox = nc.new_inbox()
        self._core = await nc.subscribe(self._inbox, cb=self._on_msg)
        label = f"govbus-nats {self._name}"
        self._puller = asyncio.create_task(self._pull(), name=f"{label} pull")
        self._ticker = asyncio.create_task(self._keep_alive(), name=f"{label} keepalive")
        for _ in range(self._concurrency):
            self._workers.append(asyncio.create_task(self._work(), name=f"{label} worker"))

    async def unsubscribe(self) -> None:
        """Stop receiving. Idle workers stop now; busy ones after their current delivery.

        Messages not yet handled go back to a group's consumer for its other or later members;
        those of a subscription without a group are dead-lettered (cause ``"subscription ...
        cancelled before delivery"``), and its consumer is deleted. Safe to call from inside
        this subscription's own handler, and more than once.
        """
        if self._stopping:
            return
        self._stopping = True
        await self._stop_receiving()
        cause = f"subscription {self._name} cancelled before delivery"
        await self._return_buffered(cause)
        mine: set[asyncio.Task[Any] | None] = {asyncio.current_task(), _running_worker.get()}
        # Busy workers finish their current delivery; waiting for the one that runs the caller
        # (directly, or through a task its handler started) would deadlock.
        while self._busy - mine:
            self._room.clear()
            await self._room.wait()
        await self._return_buffered(cause)
        self._cancel_tasks(mine)
        if not self._durable:
            await self._flush_leftovers(cause)
            left = await self._bus._delete_consumer(self._consumer, count=True)
            if left:
                logger.warning(
                    "subscription %s unsubscribed with %d message(s) awaiting a delayed "
                    "redelivery; they were dropped with its consumer",
                    self._name,
                    left,
                )
        self._bus._forget(self)

    async def _stop_receiving(self) -> None:
        """Stop pulling; messages that still arrive go back to the consumer (nak)."""
        self._stopped = True
        self._room.set()
        if self._puller is not None:
            self._puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._puller
        core = self._core
        self._core = None
        if core is not None:
            # Drain: the server stops sending, and what it already sent reaches _on_msg
            # (which naks it now) rather than being dropped unanswered.
            try:
                await asyncio.wait_for(core.drain(), _ATTEMPT_TIMEOUT)  # type: ignore[no-untyped-call]
            except (TimeoutError, nats.errors.Error):
                with contextlib.suppress(nats.errors.Error):
                    await core.unsubscribe()

    async def _return_buffered(self, cause: str) -> None:
        """Messages received but not started: back to a group, dead-lettered otherwise."""
        while not self._queue.empty():
            held = self._queue.get_nowait()
            if self._durable:
                await self._nak_quietly(held.msg)
            else:
                await self._dead_letter_raw(held.msg, cause)
            self._held.pop(id(held.msg), None)

    def _cancel_tasks(self, mine: set[asyncio.Task[Any] | None]) -> None:
        for task in (self._ticker, *self._workers):
            if task is not None and task not in mine:
                task.cancel()

    async def _shutdown(self, deadline: float) -> int:
        """Close-time stop: return buffered messages, wait for busy handlers until
        ``deadline``, cancel the rest. Returns how many messages were abandoned."""
        self._stopping = True
        await self._stop_receiving()
        loop = asyncio.get_running_loop()
        mine: set[asyncio.Task[Any] | None] = {asyncio.current_task(), _running_worker.get()}
        cause = f"bus closed before subscription {self._name} handled the message"
        await self._return_buffered(cause)
        while self._busy - mine and loop.time() < deadline:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), max(0.0, deadline - loop.time()))
            await self._return_buffered(cause)
        abandoned = len(self._busy)
        tasks = [t for t in (self._ticker, *self._workers) if t is not None and t not in mine]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._return_buffered(cause)
        if not self._durable:
            # What the consumer still had (cancelled deliveries included) goes with it.
            left = await self._bus._delete_consumer(self._consumer, count=True)
            abandoned = max(abandoned, left)
        self._bus._forget(self)
        return abandoned

    # -- pulling ---------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        """Core subscription callback: a pulled message or a pull request's status."""
        status = _status(msg)
        if status is not None:
            if status == _HEARTBEAT:
                return
            self._last_status = status
            if status not in (_NO_MESSAGES, _REQUEST_TIMEOUT):
                description = msg.headers.get("Description", "") if msg.headers else ""
                logger.debug(
                    "pull from consumer %s ended with status %s %s",
                    self._consumer,
                    status,
                    description,
                )
                if "deleted" in description.lower():
                    self._gone = True
            self._credit = 0
            self._request_done.set()
            return
        self._bus._activity += 1
        if self._stopped:
            await self._nak_quietly(msg)
            return
        self._got += 1
        self._credit -= 1
        if self._credit <= 0:
            self._request_done.set()
        held = _Held(msg, asyncio.get_running_loop().time())
        self._held[id(msg)] = held
        self._queue.put_nowait(held)

    def _wake(self) -> None:
        """Abandon waiting for the current pull request (``close()`` switches to polling)."""
        self._request_done.set()
        self._room.set()

    async def _pull(self) -> None:
        bus = self._bus
        nc = bus._client()
        pause = 0.05
        while not self._stopped:
            free = self._concurrency - len(self._busy) - self._queue.qsize()
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            if self._gone:
                await self._recreate()
            closing = bus._closing
            request: dict[str, Any] = {"batch": free}
            if closing:
                request["no_wait"] = True
            else:
                request["expires"] = int(bus.pull_expires * 1e9)
            self._credit = free
            self._got = 0
            self._last_status = None
            self._request_done.clear()
            try:
                await nc.publish(
                    self._next_subject, json.dumps(request).encode(), reply=self._inbox
                )
            except nats.errors.Error:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            wait = (_ATTEMPT_TIMEOUT if closing else bus.pull_expires) + _PULL_MARGIN
            try:
                await asyncio.wait_for(self._request_done.wait(), wait)
            except TimeoutError:
                # The request was lost: a reconnect, a restarted server, or a missing consumer.
                self._credit = 0
                if not bus._closing:
                    await self._check_consumer()
                continue
            status = self._last_status
            self._polls += 1
            bus._polled.set()
            empty = self._got == 0 and status in (_NO_MESSAGES, _REQUEST_TIMEOUT)
            self._idle = (
                empty
                and not self._busy
                and self._queue.empty()
                and (self._durable or not self._delayed)
            )
            if status is not None and status not in (_NO_MESSAGES, _REQUEST_TIMEOUT):
                await asyncio.sleep(pause)  # 409 (consumer deleted, too many pulls), 503
                pause = min(pause * 2, 1.0)
                continue
            pause = 0.05
            if empty and bus._closing:
                await asyncio.sleep(_DRAIN_POLL)

    async def _check_consumer(self) -> None:
        """After a lost pull request: recreate the consumer if the server no longer has it."""
        js = self._bus._jetstream_now()
        if js is None:
            return
        try:
            await js.consumer_info(self._bus.stream, self._consumer, timeout=_ATTEMPT_TIMEOUT)
        except nats.js.errors.NotFoundError:
            self._gone = True
        except (nats.errors.Error, TimeoutError):
            return  # the server is not reachable; the next pull tries again

    async def _recreate(self) -> None:
        self._gone = False
        try:
            await self._bus._create_consumer(self._consumer, self._spec, durable=self._durable)
        except (nats.errors.Error, TimeoutError, GovbusError) as exc:
            self._gone = True
            logger.warning("could not recreate consumer %s: %s", self._consumer, _reason(exc))
            await asyncio.sleep(0.5)
            return
        logger.warning(
            "consumer %s of subscription %s was missing on the server and was recreated; "
            "messages published while it was missing were not kept for it",
            self._consumer,
            self._name,
        )

    async def _keep_alive(self) -> None:
        """Mark held messages in progress so ``ack_wait`` does not pass while they wait."""
        period = max(self._bus.ack_wait / 3, 0.05)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for held in list(self._held.values()):
                if now - held.since >= period:
                    with contextlib.suppress(nats.errors.Error):
                        await held.msg.in_progress()

    async def _flush_leftovers(self, cause: str) -> None:
        """Dead-letter what the consumer (of a subscription without a group) still has."""
        nc = self._bus._client_now()
        if nc is None or nc.is_closed:
            return
        batch = 64
        try:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
        except nats.errors.Error:
            return
        try:
            while True:
                request = json.dumps({"batch": batch, "no_wait": True}).encode()
                await nc.publish(self._next_subject, request, reply=inbox)
                got = 0
                while True:
                    msg = await sub.next_msg(timeout=_ATTEMPT_TIMEOUT)
                    if _status(msg) is not None:
                        break
                    got += 1
                    await self._dead_letter_raw(msg, cause)
                if got < batch:
                    return
        except (nats.errors.Error, TimeoutError) as exc:
            logger.debug("flushing consumer %s stopped: %s", self._consumer, _reason(exc))
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    # -- handling --------------------------------------------------------------------------

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        _running_worker.set(me)  # once per worker; tasks started by handlers inherit it
        while not self._stopped:
            held = await self._queue.get()
            self._busy.add(me)
            try:
                await self._deliver(held)
            finally:
                self._busy.discard(me)
                self._held.pop(id(held.msg), None)
                self._room.set()

    async def _deliver(self, held: _Held) -> None:
        msg = held.msg
        parsed = self._parse(msg)
        if parsed is None:
            return
        message, address, attempt = parsed
        sequence = self._sequence(msg)
        self._delayed.discard(sequence)
        unwritten = self._unwritten.pop(sequence, None)
        if unwritten is not None:
            # Given up on already; only writing the dead letter failed: try that again.
            await self._store_and_ack(msg, self._letter(message, address, *unwritten))
            return
        if attempt > self._max_attempts + _UNSETTLED_RETRIES:
            letter = self._letter(
                message,
                address,
                attempt - 1,
                f"gave up after {attempt - 1} deliveries, the last ones never settled "
                "(the handler's process stopped, or ack_wait passed)",
            )
            await self._store_and_ack(msg, letter)
            return
        delivery = _NatsDelivery(self, held, message, address, attempt)
        me = asyncio.current_task()
        try:
            await self._handler(delivery)
        except asyncio.CancelledError as exc:
            if me is not None and me.cancelling():
                if not delivery._settled:
                    delivery._settled = True
                    await self._nak_quietly(msg)
                raise  # the worker itself is being stopped (close timed out)
            await self._handler_failed(delivery, exc)
        except Exception as exc:
            await self._handler_failed(delivery, exc)
        else:
            if not delivery._settled:
                delivery._settled = True
                await self._ack(msg)

    def _parse(self, msg: Msg) -> tuple[Message, str | None, int] | None:
        """The envelope, address and attempt of ``msg``; None when it is not for this
        subscription (acked in the background) or malformed (termed)."""
        try:
            attempt = _counts(msg)[0]
        except (nats.errors.Error, ValueError, IndexError):
            logger.error("message on %s has no JetStream metadata; ignored", msg.subject)
            return None
        try:
            message = Message.from_json(msg.data)
            address = self._bus._address_of(msg.subject)
        except (EnvelopeError, ValueError) as exc:
            logger.error(
                "malformed envelope on %s (stream sequence %d): %s; terminated",
                msg.subject,
                self._sequence(msg),
                type(exc).__name__,
            )
            self._spawn(msg.term())
            return None
        if not self._spec.route.matches(message, address):
            self._spawn(self._ack(msg))  # in the filter, not in the route: not ours
            return None
        if message.attempt != attempt:
            message = message.model_copy(update={"attempt": attempt})
        return message, address, attempt

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(nats.errors.Error):
                await coro

        self._bus._background(run())

    @staticmethod
    def _sequence(msg: Msg) -> int:
        try:
            return _counts(msg)[1]
        except (nats.errors.Error, ValueError, IndexError, AttributeError):
            return -1

    async def _handler_failed(self, delivery: _NatsDelivery, exc: BaseException) -> None:
        message = delivery._message
        if delivery._settled:
            logger.warning(
                "handler %s raised %s after settling message %s (type %s)",
                self._name,
                type(exc).__name__,
                message.id,
                message.type,
            )
            return
        logger.warning(
            "handler %s raised %s on message %s (type %s, attempt %d)",
            self._name,
            type(exc).__name__,
            message.id,
            message.type,
            delivery._attempt,
        )
        delivery._settled = True
        await self._nacked(delivery, None, repr(exc))

    # -- settlement ------------------------------------------------------------------------

    async def _ack(self, msg: Msg) -> None:
        """Ack and wait for the server's confirmation, retrying through a reconnect."""
        bus = self._bus
        if not bus.confirm_acks:
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()
            return
        if msg._ackd:
            return
        replies = bus._replies
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bus.ack_wait
        while True:
            try:
                if replies is None:
                    raise nats.errors.ConnectionClosedError
                await replies.request(msg.reply, b"+ACK", min(_ATTEMPT_TIMEOUT, bus.ack_wait))
                msg._ackd = True
                return
            except (nats.errors.Error, TimeoutError) as exc:
                nc = bus._client_now()
                if loop.time() >= deadline or nc is None or nc.is_closed:
                    logger.warning(
                        "ack of stream message %d on %s not confirmed (%s); it may be redelivered",
                        self._sequence(msg),
                        msg.subject,
                        _reason(exc),
                    )
                    return
            await asyncio.sleep(0.05)

    async def _nak_quietly(self, msg: Msg, delay: float | None = None) -> None:
        with contextlib.suppress(nats.errors.Error):
            await msg.nak(delay=delay if delay and delay > 0 else None)

    async def _nacked(self, delivery: _NatsDelivery, delay: float | None, reason: str) -> None:
        attempt = delivery._attempt
        if attempt >= self._max_attempts:
            await self._dead_letter(
                delivery,
                f"gave up after {attempt} attempt(s): {reason or 'nacked without a reason'}",
            )
            return
        if delay is None:
            delay = self._bus.backoff(attempt)
        msg = delivery._held.msg
        if not self._durable and delay > 0:
            self._delayed.add(self._sequence(msg))
        await self._nak_quietly(msg, delay)

    def _letter(
        self, message: Message, address: str | None, attempts: int, cause: str
    ) -> DeadLetter:
        return DeadLetter(
            message=message,
            address=address,
            subscription=self._name,
            attempts=attempts,
            cause=cause,
            at=datetime.now(UTC),
        )

    async def _dead_letter(self, delivery: _NatsDelivery, cause: str) -> None:
        letter = self._letter(delivery._message, delivery._address, delivery._attempt, cause)
        await self._store_and_ack(delivery._held.msg, letter)

    async def _dead_letter_raw(self, msg: Msg, cause: str) -> None:
        """Dead-letter a message that was never handed to the handler."""
        parsed = self._parse(msg)
        if parsed is None:
            return
        message, address, attempt = parsed
        await self._store_and_ack(msg, self._letter(message, address, attempt, cause))

    async def _store_and_ack(self, msg: Msg, letter: DeadLetter) -> None:
        """Write ``letter``, then ack its message; if the write fails, redeliver it later so
        the dead-lettering is tried again (the message stays in the work stream)."""
        if await self._bus._store_dead(letter):
            await self._ack(msg)
            return
        sequence = self._sequence(msg)
        with contextlib.suppress(nats.errors.Error, ValueError, IndexError):
            if msg.metadata.num_delivered >= self._max_attempts + _EXTRA_DELIVERIES:
                logger.error(
                    "message %s (type %s) could not be dead-lettered and has used all its "
                    "deliveries: it stays unacknowledged in stream %s at sequence %d",
                    letter.message.id,
                    letter.message.type,
                    self._bus.stream,
                    sequence,
                )
        if len(self._unwritten) < _UNWRITTEN_MAX:
            self._unwritten[sequence] = (letter.attempts, letter.cause)
        await self._nak_quietly(msg, self._bus.redelivery_max)


# --------------------------------------------------------------------------------------------
# The bus


#: Deliveries beyond ``max_attempts`` that still reach a handler when the previous one was never
#: settled (its process died: ``kill -9``), so the work moves to another member instead of the
#: dead-letter stream. A handler's own failure on such a delivery dead-letters it as usual.
_UNSETTLED_RETRIES: Final = 2


class NatsBus:
    """The :class:`~govbus.bus.base.Bus` over NATS JetStream (see the module docstring).

    Args:
        url: the NATS server (``nats://host:port``; credentials in the URL are never logged).
        stream: the work stream's name; created on :meth:`start` if missing.
        subject_prefix: the first subject token(s) of every subject the bus uses.
        dead_letters: where dead letters go; default: a :class:`NatsDeadLetterStore` on the
            stream ``<stream>_DLQ`` of the same server.
        name: the connection name shown by the server's monitoring.
        connect_timeout: seconds for each connection attempt at :meth:`start`.
        connect_attempts: attempts at :meth:`start` before ``BusUnavailableError`` (nats-py
            makes at least two); once connected, reconnects go on for ever.
        reconnect_wait: seconds between reconnect attempts.
        publish_timeout: how long a publish retries (through a reconnect) before it raises
            ``BusUnavailableError``.
        ack_wait: seconds the server waits for an ack before redelivering; held messages are
            marked in progress every ``ack_wait / 3`` seconds.
        redelivery_base: first backoff (seconds) of a nack without an explicit delay.
        redelivery_max: the backoff cap (and the retry delay when dead-lettering fails).
        pull_expires: how long one pull request waits on the server for messages.
        duplicate_window: the stream's de-duplication window (seconds), for a new stream.
        retention: ``"limits"`` (a message stays until ``max_age``) or ``"interest"`` (it
            stays until every interested consumer acked it; see the module docstring for why
            that is not the default), for a new stream.
        max_age: the stream's message age limit in seconds (None: no limit), for a new
            stream: also how long a durable group may be away before messages for it expire.
        subscription_ttl: seconds after which the server deletes the consumer of a
            subscription without a group whose process stopped pulling (died).
        route_ttl: seconds the list of consumers' routes is trusted before it is re-read.
        confirm_acks: wait for the server to confirm each ack (and retry it); False sends acks
            without waiting (faster, but a lost ack means a redelivery).

    Attributes:
        undeliverable: publishes refused because nothing would receive them.
        duplicates: publishes the server dropped as duplicates (same id and address).
        dead_letter_total: messages dead-lettered by this bus.
        dead_letter_failures: dead letters the store refused (the message was redelivered).
        abandoned: messages still held, or left to a deleted consumer, when a ``close()``
            drain timed out.

    Example:
        A sketch (needs a server)::

            async with NatsBus("nats://127.0.0.1:4222") as bus:
                await bus.subscribe(handle, recipient="analyzer", group="analyzer")
                await bus.publish(Message(type="portfolio.analyze", sender="web",
                                          to="analyzer"))
    """

    supports_request: bool = True
    supports_dead_letters: bool = True

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "GOVBUS",
        subject_prefix: str = "govbus",
        dead_letters: DeadLetterStore | None = None,
        name: str | None = None,
        connect_timeout: float = 2.0,
        connect_attempts: int = 2,
        reconnect_wait: float = 0.25,
        publish_timeout: float = 10.0,
        ack_wait: float = 30.0,
        redelivery_base: float = 0.1,
        redelivery_max: float = 10.0,
        pull_expires: float = 2.0,
        duplicate_window: float = 120.0,
        retention: Literal["interest", "limits"] = "limits",
        max_age: float | None = 7 * 24 * 3600.0,
        subscription_ttl: float = 300.0,
        route_ttl: float = 5.0,
        confirm_acks: bool = True,
    ) -> None:
        if not _NAME.match(stream):
            raise ValueError(f"stream name {stream!r} may use only A-Z a-z 0-9 _ -")
        if not _PREFIX.match(subject_prefix):
            raise ValueError(
                f"subject_prefix {subject_prefix!r} must be dot-separated tokens of A-Z a-z 0-9 _ -"
            )
        if redelivery_base < 0 or redelivery_max < redelivery_base:
            raise ValueError(
                "need 0 <= redelivery_base <= redelivery_max, got "
                f"{redelivery_base} and {redelivery_max}"
            )
        positive = {
            "connect_timeout": connect_timeout,
            "publish_timeout": publish_timeout,
            "ack_wait": ack_wait,
            "pull_expires": pull_expires,
            "duplicate_window": duplicate_window,
            "subscription_ttl": subscription_ttl,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"{key} must be positive, got {value}")
        if connect_attempts < 1:
            raise ValueError(f"connect_attempts must be at least 1, got {connect_attempts}")
        if retention not in ("interest", "limits"):
            raise ValueError(f"retention must be 'interest' or 'limits', got {retention!r}")
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.name = name
        self.connect_timeout = connect_timeout
        self.connect_attempts = connect_attempts
        self.reconnect_wait = reconnect_wait
        self.publish_timeout = publish_timeout
        self.ack_wait = ack_wait
        self.redelivery_base = redelivery_base
        self.redelivery_max = redelivery_max
        self.pull_expires = pull_expires
        self.duplicate_window = duplicate_window
        self.retention = retention
        self.max_age = max_age
        self.subscription_ttl = subscription_ttl
        self.route_ttl = route_ttl
        self.confirm_acks = confirm_acks
        self.undeliverable = 0
        self.duplicates = 0
        self.dead_letter_total = 0
        self.dead_letter_failures = 0
        self.abandoned = 0
        self._where = _redact(url)
        self._root = f"{subject_prefix}.m"
        self._reply_root = f"{subject_prefix}.reply"
        self._own_dead = dead_letters is None
        self._dead: DeadLetterStore = dead_letters or NatsDeadLetterStore(
            self, stream=f"{stream}_DLQ", subject_prefix=f"{subject_prefix}_dlq"
        )
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._replies: _Replies | None = None
        self._node_id = secrets.token_hex(5)
        self._sequence = 0
        self._subs: list[_NatsSubscription] = []
        self._routes: dict[str, Route] = {}
        self._routes_at = -math.inf
        self._routes_lock = asyncio.Lock()
        self._pending_requests: dict[str, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._activity = 0
        self._polled = asyncio.Event()
        self._closing = False
        self._sealed = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._close_lock = asyncio.Lock()

    # -- connection ------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The server URL (password hidden), for messages."""
        return self._where

    @property
    def closing(self) -> bool:
        """True once :meth:`close` has started."""
        return self._closing

    @property
    def connected(self) -> bool:
        """True while the connection to the server is up (not while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    def _client(self) -> Client:
        if self._nc is None:
            raise BusClosedError("the NATS bus is not started")
        return self._nc

    def _client_now(self) -> Client | None:
        return self._nc

    def _jetstream_now(self) -> JetStreamContext | None:
        return self._js

    async def _jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting first if the bus is not started yet."""
        if self._js is None:
            await self.start()
        assert self._js is not None
        return self._js

    async def start(self) -> None:
        """Connect, and create the work stream if it does not exist. Idempotent.

        Raises:
            BusUnavailableError: the server cannot be reached (the message names the URL and
                the reason), or it has no JetStream.
            ConfigError: the stream exists but does not capture this bus's subjects, or
                another stream already captures them.
            BusClosedError: the bus was closed; a ``NatsBus`` does not restart.
        """
        async with self._start_lock:
            if self._closing:
                raise BusClosedError("the NATS bus is closed and cannot be restarted")
            if self._nc is not None:
                return
            nc = await self._connect()
            try:
                js = nc.jetstream(timeout=_ATTEMPT_TIMEOUT)
                await self._ensure_stream(js)
                replies = _Replies(nc)
                await replies.start()
                self._nc, self._js, self._replies = nc, js, replies
                await self._refresh_routes(self.publish_timeout)
            except BaseException:
                self._nc = self._js = self._replies = None
                with contextlib.suppress(Exception):
                    await nc.close()
                raise

    async def _connect(self) -> Client:
        nc = Client()
        errors: list[BaseException] = []
        where = self._where
        # During an outage every reconnect attempt fails: warn once, then log at debug level.
        warned = [False]

        async def on_error(exc: Exception) -> None:
            errors.append(exc)
            del errors[:-3]
            if nc.is_connected or nc.is_reconnecting:
                level = logging.DEBUG if warned[0] else logging.WARNING
                warned[0] = True
                logger.log(level, "NATS connection to %s: %s", where, _reason(exc))

        async def on_disconnected() -> None:
            if not self._closing:
                logger.warning("disconnected from NATS at %s; reconnecting", where)

        async def on_reconnected() -> None:
            warned[0] = False
            logger.warning("reconnected to NATS at %s", where)
            for sub in list(self._subs):
                sub._wake()  # pull requests from before the outage may be gone

        async def on_closed() -> None:
            logger.debug("NATS connection to %s closed", where)

        options: dict[str, Any] = {
            "servers": [self.url],
            "name": self.name or f"govbus-{self._node_id}",
            "connect_timeout": self.connect_timeout,
            "reconnect_time_wait": self.reconnect_wait,
            # nats-py gives up after this many retries (it always makes at least one).
            "max_reconnect_attempts": max(1, self.connect_attempts - 1),
            "allow_reconnect": True,
            "drain_timeout": _ATTEMPT_TIMEOUT,
            "error_cb": on_error,
            "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected,
            "closed_cb": on_closed,
        }
        try:
            await nc.connect(**options)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = errors[-1] if errors else exc
            raise BusUnavailableError(
                f"cannot connect to NATS at {where}: {_reason(cause)}"
            ) from None
        # Bounded attempts at start (so start() fails fast); once connected, reconnect for ever.
        nc.options["max_reconnect_attempts"] = -1
        return nc

    def _stream_config(self) -> api.StreamConfig:
        retention = (
            api.RetentionPolicy.INTEREST
            if self.retention == "interest"
            else api.RetentionPolicy.LIMITS
        )
        return api.StreamConfig(
            name=self.stream,
            description="govbus work stream",
            subjects=[f"{self._root}.>"],
            retention=retention,
            storage=api.StorageType.FILE,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age,
        )

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        subject = f"{self._root}.>"
        try:
            try:
                info = await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                try:
                    info = await js.add_stream(self._stream_config())
                    logger.info("created stream %s for %s at %s", self.stream, subject, self._where)
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code == 10065:  # subjects overlap with another stream
                        raise ConfigError(
                            f"cannot create stream {self.stream} at {self._where}: another "
                            f"stream already captures {subject} ({exc.description})"
                        ) from None
                    info = await js.stream_info(self.stream)  # created meanwhile
        except (nats.errors.Error, TimeoutError) as exc:
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(exc, _TRANSIENT):
                raise ConfigError(
                    f"cannot set up stream {self.stream} at {self._where}: {_reason(exc)}"
                ) from None
            raise BusUnavailableError(
                f"JetStream at {self._where} is not available: {_reason(exc)}"
            ) from None
        subjects = info.config.subjects or []
        if subject not in subjects and ">" not in subjects:
            raise ConfigError(
                f"stream {self.stream} at {self._where} captures {subjects}, not {subject}; "
                "use another stream name or subject prefix"
            )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- retries ---------------------------------------------------------------------------

    async def _retrying(
        self,
        what: str | Callable[[], str],
        operation: Callable[[float], Awaitable[_T]],
        timeout: float,
        *,
        last: BaseException | None = None,
    ) -> _T:
        """Run ``operation(attempt_timeout)`` until it succeeds or ``timeout`` passes; ``what``
        names the operation in errors (a callable: only formatted if one is raised), ``last``
        is the failure of an attempt made before (then this one waits a little first).

        Raises:
            BusUnavailableError: every attempt failed with a transient error until the end.
            BusClosedError: the connection was closed (the bus is closing).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.02
        if isinstance(last, nats.errors.ConnectionClosedError):
            raise self._closed_error(what) from None
        if last is not None:
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause *= 2
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BusUnavailableError(
                    f"NATS at {self._where} did not answer: could not {_named(what)} within "
                    f"{timeout:g}s ({_reason(last)})"
                )
            try:
                return await operation(max(0.05, min(remaining, _ATTEMPT_TIMEOUT)))
            except _TRANSIENT as exc:
                last = exc
            except nats.errors.ConnectionClosedError:
                raise self._closed_error(what) from None
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, 0.5)

    def _closed_error(self, what: str | Callable[[], str]) -> BusError:
        """The error for an operation that met a closed connection."""
        if self._closing:
            return BusClosedError(f"the NATS bus is closed; could not {_named(what)}")
        return BusUnavailableError(
            f"the connection to NATS at {self._where} is closed; could not {_named(what)}"
        )

    # -- publishing ------------------------------------------------------------------------

    def _address_of(self, subject: str) -> str | None:
        rest = subject[len(self._root) + 1 :]
        token = rest.partition(".")[0]
        return decode_token(token)

    def _reply_subject(self, message_id: str) -> str:
        return f"{self._reply_root}.{encode_token(message_id)}"

    def _headers(self, message: Message, token: str) -> dict[str, str]:
        """NATS headers of ``message`` published to the address whose token is ``token``."""
        ident = message.id
        if not _SAFE_HEADER.match(ident):
            ident = "sha256-" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
        headers = {"Nats-Msg-Id": f"{ident}@{token}"}
        metadata = message.metadata
        for key in (TRACEPARENT, TRACESTATE):
            value = metadata.get(key)
            if value is not None and _SAFE_TRACE.match(value):
                headers[key] = value
        return headers

    async def publish(self, message: Message, *, address: str | None = None) -> None:
        """Publish ``message`` to ``address`` (default ``message.to``) on the work stream.

        Connects first if the bus is not started.

        Raises:
            BusClosedError: :meth:`close` has finished draining.
            NoSubscriberError: no subscription (in any process) would receive it, and no
                ``request`` waits for it; it was not published.
            BusUnavailableError: the server did not confirm it within ``publish_timeout``
                (it may or may not have been stored; publishing it again is safe within the
                stream's duplicate window).
            BusError: the message is larger than the server accepts (code
                ``message_too_large``).
        """
        if self._sealed:
            raise BusClosedError(
                f"bus is closed; message {message.id} (type {message.type}) was not published"
            )
        if self._js is None:
            await self._jetstream()
        if address is None:
            address = message.to
        if message.attempt != 1:
            message = message.model_copy(update={"attempt": 1})
        self._activity += 1
        data = message.to_json()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        # What remains of ``publish_timeout`` (at least enough for one attempt) is computed
        # inline, not by a closure: a closure's variables become cell objects for as long as
        # the publish waits, and the garbage collector has to track every one of them.
        answered = self._answer_local(message)
        if loop.time() - self._routes_at <= self.route_ttl:  # fresh: no need to await
            routable = any(route.matches(message, address) for route in self._routes.values())
        else:
            left = max(0.05, deadline - loop.time())
            routable = await self._routable(message, address, timeout=left)
        if not routable and not answered:
            if message.causation_id is not None:
                left = max(0.05, deadline - loop.time())
                answered = await self._answer_remote(message, data, timeout=left)
            if not answered:
                left = max(0.05, deadline - loop.time())
                routable = await self._routable(message, address, refresh=True, timeout=left)
        if not routable:
            if answered:
                return
            self.undeliverable += 1
            raise NoSubscriberError(
                f"no subscription matches message {message.id} "
                f"(type {message.type}, address {address!r}); it was not published"
            )
        await self._publish_stream(message, address, data, max(0.05, deadline - loop.time()))
        if message.causation_id is not None and not answered:
            await self._notify_requester(message, data)

    async def _publish_stream(
        self, message: Message, address: str | None, data: bytes, timeout: float
    ) -> None:
        """Publish to the work stream: one attempt directly, then (only if it failed with a
        transient error) the retry loop, in a method of its own so that the common path
        makes no closures."""
        if self._replies is None:
            await self._jetstream()
        replies = self._replies
        assert replies is not None
        token = encode_token(address)
        subject = f"{self._root}.{token}.{message.type}"
        headers = self._headers(message, token)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            try:
                first = max(0.05, min(timeout, _ATTEMPT_TIMEOUT))
                ack = await replies.publish(subject, data, first, headers)
            except _TRANSIENT_OR_CLOSED as exc:
                remaining = timeout - (loop.time() - began)
                ack = await self._publish_retrying(message, subject, data, headers, remaining, exc)
        except nats.errors.MaxPayloadError:
            raise BusError(
                f"message {message.id} (type {message.type}) is {len(data)} bytes, more than "
                f"the NATS server at {self._where} accepts; it was not published",
                code="message_too_large",
            ) from None
        except nats.js.errors.APIError as exc:
            raise BusError(
                f"the stream refused message {message.id} (type {message.type}): {_reason(exc)}"
            ) from None
        if ack.get("duplicate"):
            self.duplicates += 1
            logger.debug(
                "message %s to %s was a duplicate; the server kept the first", message.id, subject
            )

    async def _publish_retrying(
        self,
        message: Message,
        subject: str,
        data: bytes,
        headers: dict[str, str],
        timeout: float,
        last: BaseException,
    ) -> dict[str, Any]:
        replies = self._replies
        assert replies is not None

        async def attempt(timeout: float) -> dict[str, Any]:
            return await replies.publish(subject, data, timeout, headers)

        return await self._retrying(
            lambda: f"publish message {message.id} (type {message.type}) to {subject}",
            attempt,
            timeout,
            last=last,
        )

    async def _routable(
        self, message: Message, address: str | None, *, timeout: float, refresh: bool = False
    ) -> bool:
        """Whether some consumer's route matches; ``refresh`` re-reads the routes first (as
        does a cache older than ``route_ttl``)."""
        loop = asyncio.get_running_loop()
        stale = loop.time() - self._routes_at > self.route_ttl
        if refresh:
            await self._refresh_routes(timeout)
        elif stale:
            # Stale but usable if the server does not answer: the publish itself will say.
            with contextlib.suppress(BusUnavailableError):
                await self._refresh_routes(min(timeout, _ATTEMPT_TIMEOUT))
        return any(route.matches(message, address) for route in self._routes.values())

    async def _refresh_routes(self, timeout: float) -> None:
        """Re-read every consumer's route. Concurrent callers share one read."""
        js = await self._jetstream()
        stream = self.stream
        asked = asyncio.get_running_loop().time()
        async with self._routes_lock:
            if self._routes_at >= asked:
                return  # another caller began reading them after we asked
            await self._read_routes(js, stream, timeout)

    async def _read_routes(self, js: JetStreamContext, stream: str, timeout: float) -> None:
        began = asyncio.get_running_loop().time()

        async def read(_timeout: float) -> dict[str, Route]:  # API calls use js's timeout
            routes: dict[str, Route] = {}
            offset = 0
            while True:
                page = await js.consumers_info(stream, offset=offset)
                for info in page:
                    spec = _ConsumerSpec.parse(info.config.description)
                    if spec is not None and info.name:
                        routes[info.name] = spec.route
                if len(page) < _LIST_PAGE:
                    return routes
                offset += len(page)

        routes = await self._retrying(f"list the consumers of stream {stream}", read, timeout)
        # Subscriptions made by this process are known even if the list raced their creation.
        for sub in self._subs:
            routes.setdefault(sub.consumer, sub.route)
        self._routes = routes
        self._routes_at = began  # what was created after this may be missing

    # -- request / reply -------------------------------------------------------------------

    def _answer_local(self, message: Message) -> bool:
        cause = message.causation_id
        if cause is None or not self._pending_requests:
            return False
        future = self._pending_requests.pop(cause, None)
        if future is None or future.done():
            return False
        future.set_result(message)
        return True

    async def _answer_remote(self, message: Message, data: bytes, *, timeout: float) -> bool:
        """Offer ``message`` to a ``request`` waiting in another process; True if one took it."""
        nc = self._client()
        assert message.causation_id is not None
        subject = self._reply_subject(message.causation_id)

        async def offer(timeout: float) -> bool:
            try:
                await nc.request(subject, data, timeout=timeout)
            except nats.errors.NoRespondersError:
                return False
            return True

        return await self._retrying(
            f"offer message {message.id} to a waiting request", offer, timeout
        )

    async def _notify_requester(self, message: Message, data: bytes) -> None:
        assert message.causation_id is not None
        nc = self._client()
        try:
            await nc.publish(self._reply_subject(message.causation_id), data)
        except nats.errors.Error as exc:
            logger.debug("could not notify a requester of %s: %s", message.id, _reason(exc))

    async def _on_reply(self, msg: Msg) -> None:
        try:
            reply = Message.from_json(msg.data)
        except EnvelopeError:
            logger.warning("malformed reply on %s ignored", msg.subject)
            return
        future = self._pending_requests.get(reply.causation_id or "")
        took = future is not None and not future.done()
        if future is not None and took:
            self._pending_requests.pop(reply.causation_id or "", None)
            future.set_result(reply)
        if took and msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(b"")

    async def request(
        self, message: Message, *, timeout: float, address: str | None = None
    ) -> Message:
        """Publish ``message`` and return the first message published (by any process) with
        ``causation_id`` equal to its id.

        Raises:
            RequestTimeoutError: no reply within ``timeout`` seconds (publishing included).
            BusClosedError: the bus is closed, or closed before a reply came.
            NoSubscriberError: nothing would receive the request.
            ValueError: a request with the same message id is already waiting.
        """
        key = message.id
        if key in self._pending_requests:
            raise ValueError(f"a request for message {key} is already waiting for a reply")
        if self._sealed:
            raise BusClosedError(f"bus is closed; request {key} was not published")
        await self._jetstream()
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        # Registered before publishing: a handler may reply before publish() returns.
        self._pending_requests[key] = future
        inbox: CoreSubscription | None = None
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                inbox = await self._client().subscribe(self._reply_subject(key), cb=self._on_reply)
                await self.publish(message, address=address)
                return await future
        except TimeoutError:
            if not deadline.expired():
                raise
            raise RequestTimeoutError(
                f"no reply to message {key} (type {message.type}) within {timeout:g}s"
            ) from None
        finally:
            if self._pending_requests.get(key) is future:
                del self._pending_requests[key]
            if inbox is not None:
                with contextlib.suppress(nats.errors.Error):
                    await inbox.unsubscribe()

    # -- subscribing -----------------------------------------------------------------------

    def _consumer_config(
        self, name: str, spec: _ConsumerSpec, *, durable: bool
    ) -> api.ConsumerConfig:
        return api.ConsumerConfig(
            name=name,
            durable_name=name if durable else None,
            description=spec.describe(),
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=spec.max_attempts + _EXTRA_DELIVERIES,
            filter_subject=filter_subject(self.subject_prefix, spec.route),
            inactive_threshold=None if durable else self.subscription_ttl,
        )

    async def _create_consumer(self, name: str, spec: _ConsumerSpec, *, durable: bool) -> None:
        js = await self._jetstream()
        config = self._consumer_config(name, spec, durable=durable)

        async def create(timeout: float) -> None:
            await js.add_consumer(self.stream, config, timeout=timeout)

        try:
            await self._retrying(f"create consumer {name}", create, self.publish_timeout)
        except nats.js.errors.APIError as exc:
            raise BusError(
                f"cannot create consumer {name} on stream {self.stream} at {self._where}: "
                f"{_reason(exc)}"
            ) from None

    async def _join_group(self, group: str, spec: _ConsumerSpec) -> tuple[str, _ConsumerSpec]:
        """The group's durable consumer (created if missing) and its spec."""
        js = await self._jetstream()
        name = _consumer_name(group)

        async def lookup(timeout: float) -> api.ConsumerInfo | None:
            try:
                info: api.ConsumerInfo = await js.consumer_info(self.stream, name, timeout=timeout)
            except nats.js.errors.NotFoundError:
                return None
            return info

        info = await self._retrying(f"look up consumer {name}", lookup, self.publish_timeout)
        if info is None:
            await self._create_consumer(name, spec, durable=True)
            return name, spec
        existing = _ConsumerSpec.parse(info.config.description)
        if existing is None:
            raise ValueError(
                f"consumer {name} on stream {self.stream} exists but was not made by govbus; "
                f"group {group!r} cannot use it"
            )
        if existing.route != spec.route:
            raise ValueError(
                f"group {group!r} routes {existing.route.describe()}; "
                f"a member cannot route {spec.route.describe()}"
            )
        if existing.max_attempts != spec.max_attempts:
            logger.debug(
                "group %s keeps max_attempts=%d (its consumer's value)",
                group,
                existing.max_attempts,
            )
        return name, existing

    async def subscribe(
        self,
        handler: DeliveryHandler,
        *,
        recipient: str | None = None,
        types: str | list[str] | tuple[str, ...] | None = None,
        group: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 5,
    ) -> Subscription:
        """Deliver matching messages to ``handler`` with at most ``concurrency`` in flight.

        Args:
            handler: awaited with each delivery; returning unsettled acks, raising nacks.
            recipient: match the publish address exactly.
            types: one glob or several (``"portfolio.*"``) matched against the message type.
            group: consumer group name: one durable consumer that members in every process
                share. All members must use the same ``recipient`` and ``types``; the
                consumer's ``max_attempts`` (its first member's) applies to the group.
            concurrency: handlers of this subscription in flight at once.
            max_attempts: deliveries before a message is dead-lettered.

        Raises:
            ValueError: a bad argument, or a route different from the group's.
            BusClosedError: :meth:`close` has started.
            BusUnavailableError: the server cannot be reached.
        """
        if self._closing:
            raise BusClosedError("bus is closed; cannot subscribe")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        pattern: TypePattern | None = None
        if types is not None:
            pattern = TypePattern(types)
            if not pattern.patterns:
                raise ValueError("types must name at least one pattern (or be None for all)")
        route = Route(recipient=recipient, types=pattern)
        spec = _ConsumerSpec(route, max_attempts, group)
        await self._jetstream()
        self._sequence += 1
        if group is None:
            consumer = f"s_{self._node_id}_{self._sequence}"
            await self._create_consumer(consumer, spec, durable=False)
            name = f"{route.describe()}#{self._sequence}"
            durable = False
        else:
            consumer, spec = await self._join_group(group, spec)
            name = f"{group}#{self._sequence}"
            durable = True
        if self._closing:
            if not durable:
                await self._delete_consumer(consumer)
            raise BusClosedError("bus is closed; cannot subscribe")
        sub = _NatsSubscription(
            self,
            name=name,
            consumer=consumer,
            spec=spec,
            durable=durable,
            handler=handler,
            concurrency=concurrency,
        )
        await sub._start()
        self._subs.append(sub)
        self._routes[consumer] = route
        return sub

    def _forget(self, sub: _NatsSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if not sub._durable:
            self._routes.pop(sub.consumer, None)

    async def _delete_consumer(self, name: str, *, count: bool = False) -> int:
        """Delete a consumer; with ``count``, first count the messages it still had."""
        js = self._js
        if js is None or self._nc is None or self._nc.is_closed:
            return 0
        left = 0
        try:
            if count:
                info = await js.consumer_info(self.stream, name, timeout=_ATTEMPT_TIMEOUT)
                left = (info.num_pending or 0) + (info.num_ack_pending or 0)
            await js.delete_consumer(self.stream, name)
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.Error, TimeoutError) as exc:
            logger.warning("could not delete consumer %s: %s", name, _reason(exc))
        self._routes.pop(name, None)
        return left

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before redelivering after attempt ``attempt`` was nacked without an
        explicit delay: ``redelivery_base * 2 ** (attempt - 1)``, capped at ``redelivery_max``.
        """
        return min(self.redelivery_max, math.ldexp(self.redelivery_base, min(attempt - 1, 64)))

    def _background(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- dead letters ----------------------------------------------------------------------

    async def _store_dead(self, letter: DeadLetter) -> bool:
        try:
            await self._dead.put(letter)
        except Exception as exc:
            self.dead_letter_failures += 1
            logger.error(
                "could not store dead letter for message %s (type %s) in %s: %s; "
                "it will be redelivered and tried again",
                letter.message.id,
                letter.message.type,
                self._dead.where,
                exc,
            )
            return False
        self.dead_letter_total += 1
        logger.info(
            "dead-lettered message %s (type %s) for %s after %d attempt(s)",
            letter.message.id,
            letter.message.type,
            letter.subscription,
            letter.attempts,
        )
        return True

    @property
    def dead_letter_store(self) -> DeadLetterStore:
        """Where this bus keeps dead letters."""
        return self._dead

    async def dead_letters(self) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        return await self._dead.entries()

    # -- closing ---------------------------------------------------------------------------

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Drain (see the module docstring), then refuse publishes and disconnect.

        Idempotent: a second call waits for the first to finish. A handler should start
        ``close()`` in a new task rather than await it: awaited from a handler, the drain
        waits for that handler's own delivery until ``drain_timeout``.
        """
        async with self._close_lock:
            if self._closed:
                return
            self._closing = True
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_timeout
            grace = min(1.0, drain_timeout * 0.25)
            try:
                if self._nc is not None and not self._nc.is_closed:
                    await self._drain(deadline - grace)
            finally:
                self._sealed = True
                for sub in list(self._subs):
                    self.abandoned += await sub._shutdown(deadline)
                if self.abandoned:
                    logger.warning(
                        "bus close: drain timed out after %.3gs; %d message(s) abandoned",
                        drain_timeout,
                        self.abandoned,
                    )
                for message_id, future in list(self._pending_requests.items()):
                    if not future.done():
                        future.set_exception(
                            BusClosedError(f"bus closed while request {message_id} awaited a reply")
                        )
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                if self._own_dead:
                    await self._dead.close()
                await self._disconnect()
                self._closed = True

    async def _drain(self, until: float) -> None:
        """Keep handling until every subscription is idle in the same round, or ``until``."""
        loop = asyncio.get_running_loop()
        for sub in self._subs:
            sub._wake()
        while loop.time() < until:
            subs = list(self._subs)
            activity = self._activity
            polls = {sub: sub._polls for sub in subs}
            while any(sub._polls == polls[sub] and not sub._stopped for sub in subs):
                self._polled.clear()
                try:
                    await asyncio.wait_for(self._polled.wait(), max(0.0, until - loop.time()))
                except TimeoutError:
                    return
            if activity == self._activity and all(sub._idle or sub._stopped for sub in subs):
                return

    async def _disconnect(self) -> None:
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await asyncio.wait_for(nc.drain(), _ATTEMPT_TIMEOUT * 2)
        if not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()


# --------------------------------------------------------------------------------------------
# Dead letters in a stream


_JetStreamSource = NatsBus | JetStreamContext | str


class _Connection:
    """A JetStream context from a bus, a context, or a URL (then this object owns the
    connection, opened on first use)."""

    def __init__(self, source: _JetStreamSource) -> None:
        self._source = source
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        if isinstance(source, NatsBus):
            self.where = source.where
        elif isinstance(source, str):
            self.where = _redact(source)
        else:
            self.where = "nats"

    async def jetstream(self) -> JetStreamContext:
        source = self._source
        if isinstance(source, NatsBus):
            return await source._jetstream()
        if isinstance(source, JetStreamContext):
            return source
        async with self._lock:
            if self._js is None:
                nc = Client()

                async def quiet(exc: Exception) -> None:
                    logger.debug("NATS connection to %s: %s", self.where, _reason(exc))

                options: dict[str, Any] = {
                    "servers": [source],
                    "connect_timeout": 2.0,
                    "reconnect_time_wait": 0.25,
                    "max_reconnect_attempts": 1,
                    "error_cb": quiet,
                }
                try:
                    await nc.connect(**options)
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await nc.close()
                    raise BusUnavailableError(
                        f"cannot connect to NATS at {self.where}: {_reason(exc)}"
                    ) from None
                nc.options["max_reconnect_attempts"] = -1
                self._nc, self._js = nc, nc.jetstream(timeout=_ATTEMPT_TIMEOUT)
            return self._js

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()


class NatsDeadLetterStore:
    """A :class:`~govbus.bus.deadletter.DeadLetterStore` on a JetStream stream.

    One stream message per entry, on the subject ``<subject_prefix>.<escaped entry id>``,
    holding JSON with the full envelope, address, subscription, attempts, cause and time. The
    stream is created on the first :meth:`put`; reading a missing stream finds no entries and
    creates nothing. Any process connected to the server sees the same entries (``govbus dlq``).

    Args:
        source: a :class:`NatsBus` (its connection, started on first use), a JetStream
            context, or a server URL (the store then opens and closes its own connection).
        stream: the stream's name.
        subject_prefix: the first subject token(s) of the entries.

    Like every dead-letter store it holds FULL envelopes: restrict access to the stream as you
    restrict access to the bus.
    """

    def __init__(
        self,
        source: _JetStreamSource,
        *,
        stream: str = "GOVBUS_DLQ",
        subject_prefix: str = "govbus_dlq",
    ) -> None:
        if not _NAME.match(stream):
            raise ValueError(f"stream name {stream!r} may use only A-Z a-z 0-9 _ -")
        if not _PREFIX.match(subject_prefix):
            raise ValueError(f"subject_prefix {subject_prefix!r} is not a valid subject prefix")
        self.stream = stream
        self.subject_prefix = subject_prefix
        self._conn = _Connection(source)
        self._where = f"{self._conn.where} stream {stream}"
        self._stream_ready = False
        self._closed = False

    @property
    def where(self) -> str:
        return self._where

    def _subject(self, id: str) -> str:
        return f"{self.subject_prefix}.{encode_token(id)}"

    async def _js(self, action: str) -> JetStreamContext:
        if self._closed:
            raise DeadLetterError(f"the dead-letter store at {self._where} is closed")
        try:
            return await self._conn.jetstream()
        except GovbusError as exc:
            raise DeadLetterError(f"cannot {action}: {exc}") from None

    def _failed(self, action: str, exc: BaseException) -> DeadLetterError:
        return DeadLetterError(f"cannot {action} in {self._where}: {_reason(exc)}")

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        if self._stream_ready:
            return
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            config = api.StreamConfig(
                name=self.stream,
                description="govbus dead letters",
                subjects=[f"{self.subject_prefix}.>"],
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await js.stream_info(self.stream)  # created meanwhile, or a real conflict
        self._stream_ready = True

    @staticmethod
    def _encode(letter: DeadLetter) -> bytes:
        return json.dumps(
            {
                "id": letter.id,
                "message": letter.message.to_json().decode(),
                "address": letter.address,
                "subscription": letter.subscription,
                "attempts": letter.attempts,
                "cause": letter.cause,
                "at": letter.at.isoformat(),
            },
            ensure_ascii=False,
        ).encode()

    def _decode(self, data: bytes | None, where: str) -> DeadLetter:
        try:
            raw = json.loads(data or b"")
            at = datetime.fromisoformat(raw["at"])
            return DeadLetter(
                message=Message.from_json(raw["message"]),
                address=raw["address"],
                subscription=raw["subscription"],
                attempts=int(raw["attempts"]),
                cause=raw["cause"],
                at=at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC),
                id=raw["id"],
            )
        except (ValueError, KeyError, TypeError, GovbusError) as exc:
            raise DeadLetterError(
                f"dead letter at {where} in {self._where} cannot be read: {exc}"
            ) from None

    async def put(self, letter: DeadLetter) -> None:
        letter = _checked(letter)
        action = f"write dead letter {letter.id}"
        js = await self._js(action)
        try:
            await self._ensure_stream(js)
            # Expected last sequence 0: refused if an entry with this id exists.
            await js.publish(
                self._subject(letter.id),
                self._encode(letter),
                headers={"Nats-Expected-Last-Subject-Sequence": "0"},
            )
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == 10071:
                raise DeadLetterError(
                    f"cannot {action} to {self._where}: an entry with this id exists"
                ) from None
            raise self._failed(action, exc) from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise self._failed(action, exc) from None

    async def _count(self, js: JetStreamContext) -> int:
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.state.messages or 0)

    async def entries(self, *, limit: int | None = None) -> list[DeadLetter]:
        _check_limit(limit)
        action = "read dead letters"
        js = await self._js(action)
        try:
            if await self._count(js) == 0:
                return []
            letters = await self._read_all(js)
        except (nats.errors.Error, TimeoutError) as exc:
            raise self._failed(action, exc) from None
        letters.sort(key=_sort_key)
        return letters if limit is None else letters[:limit]

    async def _read_all(self, js: JetStreamContext) -> list[DeadLetter]:
        """Every entry, through a short-lived consumer that reads the stream once."""
        name = f"read_{secrets.token_hex(8)}"
        config = api.ConsumerConfig(
            name=name,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            filter_subject=f"{self.subject_prefix}.>",
            inactive_threshold=30.0,
            mem_storage=True,
        )
        await js.add_consumer(self.stream, config)
        psub = await js.pull_subscribe_bind(consumer=name, stream=self.stream)
        letters: list[DeadLetter] = []
        try:
            while True:
                try:
                    batch = await psub.fetch(256, timeout=_ATTEMPT_TIMEOUT)
                except TimeoutError:
                    return letters  # nothing more (entries removed meanwhile)
                for msg in batch:
                    letters.append(self._decode(msg.data, msg.subject))
                if not batch or batch[-1].metadata.num_pending == 0:
                    return letters
        finally:
            with contextlib.suppress(nats.errors.Error):
                await psub.unsubscribe()
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await js.delete_consumer(self.stream, name)

    async def _find(self, js: JetStreamContext, id: str) -> tuple[int, DeadLetter]:
        """The stream sequence and entry ``id`` names (exact id or unique prefix)."""
        try:
            raw = await js.get_msg(self.stream, subject=self._subject(id))
        except nats.js.errors.NotFoundError:
            pass
        else:
            return int(raw.seq or 0), self._decode(raw.data, raw.subject or id)
        if len(id) < MIN_PREFIX:
            raise _too_short(id, self._where)
        try:
            info = await js.stream_info(self.stream, subjects_filter=f"{self.subject_prefix}.>")
        except nats.js.errors.NotFoundError:
            raise _missing(id, self._where) from None
        start = len(self.subject_prefix) + 1
        ids: list[str] = []
        for subject in info.state.subjects or {}:
            with contextlib.suppress(ValueError):
                found = decode_token(subject[start:])
                if found is not None and found.startswith(id):
                    ids.append(found)
        chosen = _pick(id, self._where, ids)
        try:
            raw = await js.get_msg(self.stream, subject=self._subject(chosen))
        except nats.js.errors.NotFoundError:
            raise _not_found(id, self._where) from None  # removed meanwhile
        return int(raw.seq or 0), self._decode(raw.data, raw.subject or chosen)

    async def get(self, id: str) -> DeadLetter:
        action = f"read dead letter {id!r}"
        js = await self._js(action)
        try:
            return (await self._find(js, id))[1]
        except nats.js.errors.NotFoundError:
            raise _missing(id, self._where) from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise self._failed(action, exc) from None

    async def remove(self, id: str) -> DeadLetter:
        action = f"remove dead letter {id!r}"
        js = await self._js(action)
        try:
            seq, letter = await self._find(js, id)
            try:
                await js.delete_msg(self.stream, seq)
            except nats.js.errors.NotFoundError:
                raise _not_found(id, self._where) from None  # removed by someone else
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code == 10057:  # no message found
                    raise _not_found(id, self._where) from None
                raise
        except nats.js.errors.NotFoundError:
            raise _missing(id, self._where) from None
        except DeadLetterNotFoundError:
            raise
        except (nats.errors.Error, TimeoutError) as exc:
            raise self._failed(action, exc) from None
        return letter

    async def count(self) -> int:
        action = "count dead letters"
        js = await self._js(action)
        try:
            return await self._count(js)
        except (nats.errors.Error, TimeoutError) as exc:
            raise self._failed(action, exc) from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._conn.close()


# --------------------------------------------------------------------------------------------
# Idempotency across processes


class NatsIdempotencyStore:
    """An idempotency store (``govbus.resilience.idempotency.IdempotencyStore``) on a JetStream
    key-value bucket, shared by every process connected to the server.

    :meth:`seen` is one atomic server-side step (a KV ``create``, which fails if the key
    exists), so of many concurrent calls with a new key, in any processes, exactly one gets
    False. A key lives ``ttl`` seconds from its first sighting (the bucket's age limit; a
    duplicate does not extend it). Keys are escaped (see :func:`encode_token`), so any string
    works, such as ``"analyzer:<message id>"``.

    Every call retries through a reconnect (a restarting server) for up to ``timeout``
    seconds. A record carries a token unique to the :meth:`seen` call that wrote it, so when a
    write reached the server but its answer was lost, the retry recognises the record as its
    own (False) rather than as someone else's (True, which would drop the message).

    Args:
        source: a :class:`NatsBus` (its connection), a JetStream context, or a server URL.
        bucket: the bucket's name; created on first use if missing (an existing bucket keeps
            its own time to live).
        ttl: seconds a key is remembered, for a new bucket.
        timeout: how long a call retries before it raises (default: the bus's
            ``publish_timeout`` for a :class:`NatsBus` source, else 10 seconds).

    Raises:
        BusUnavailableError: (from every method) the server did not answer within
            ``timeout``; retryable.
    """

    def __init__(
        self,
        source: _JetStreamSource,
        *,
        bucket: str = "govbus_idempotency",
        ttl: float = 600.0,
        timeout: float | None = None,
    ) -> None:
        if not _NAME.match(bucket):
            raise ValueError(f"bucket name {bucket!r} may use only A-Z a-z 0-9 _ -")
        if not ttl > 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        if timeout is None:
            timeout = source.publish_timeout if isinstance(source, NatsBus) else 10.0
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.bucket = bucket
        self.ttl = ttl
        self.timeout = timeout
        self._conn = _Connection(source)
        self._bus = source if isinstance(source, NatsBus) else None
        self._subjects = f"$KV.{bucket}."  # nats-py's KV_PRE_TEMPLATE, without a domain
        # Claim tokens: random per store, a counter per claim (unique, and no syscall each).
        self._nonce = secrets.token_hex(6)
        self._claims = 0
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return f"{self._conn.where} bucket {self.bucket}"

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        async with self._lock:
            if self._kv is None:
                js = await self._conn.jetstream()
                try:
                    self._kv = await js.key_value(self.bucket)
                except nats.js.errors.BucketNotFoundError:
                    try:
                        self._kv = await js.create_key_value(
                            bucket=self.bucket, ttl=self.ttl, history=1
                        )
                    except nats.js.errors.BadRequestError:
                        self._kv = await js.key_value(self.bucket)  # created meanwhile
            return self._kv

    def _replies(self) -> _Replies | None:
        """The bus's request path, when the store shares a :class:`NatsBus` connection: the
        two writes of every handled message (claim, done mark) go through it rather than
        through nats-py's KV methods, which cost a full ``Client.request`` each."""
        return None if self._bus is None else self._bus._replies

    async def _retrying(
        self,
        action: Callable[[], str],
        step: Callable[[bool], Awaitable[_T]],
        first: BaseException,
    ) -> _T:
        """``step(True)`` until it succeeds or ``timeout`` passes, after a first attempt
        failed with ``first`` (an attempt that may have reached the server: ``step`` is told
        it retries)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pause = 0.02
        exc = first
        while True:
            permanent = isinstance(exc, nats.js.errors.APIError) and not isinstance(exc, _TRANSIENT)
            if permanent or isinstance(exc, nats.errors.ConnectionClosedError):
                raise BusUnavailableError(
                    f"cannot {action()} in {self.where}: {_reason(exc)}"
                ) from None
            if loop.time() + pause >= deadline:
                raise BusUnavailableError(
                    f"cannot {action()} in {self.where} within {self.timeout:g}s: {_reason(exc)}"
                ) from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            try:
                return await step(True)
            except (nats.errors.Error, TimeoutError) as failed:
                exc = failed

    async def seen(self, key: str, *, lease: float | None = None) -> bool:
        """Record ``key``; True if it was already recorded (and has not expired).

        With ``lease`` the record is a claim until ``now + lease`` (wall clock, so keep leases
        well above the clock skew between machines): a later ``seen`` after the claim lapsed
        without :meth:`done` takes it over (compare-and-set on the entry's revision) and gets
        False, so a message whose handler died with its process is handled elsewhere.
        """
        encoded = encode_token(key)
        self._claims += 1
        token = f"{self._nonce}-{self._claims}".encode()
        if lease is None:
            value = b"seen:" + token
        else:
            value = b"claim:%.3f:%s" % (time.time() + lease, token)
        try:
            return await self._seen_once(encoded, value, lease is not None, False)
        except (nats.errors.Error, TimeoutError) as exc:
            first = exc
        step = functools.partial(self._seen_once, encoded, value, lease is not None)
        return await self._retrying(functools.partial(_recording, key), step, first)

    async def _seen_once(self, encoded: str, value: bytes, leased: bool, retry: bool) -> bool:
        kv = self._kv or await self._bucket()  # the bucket exists from here on
        replies = self._replies()
        if replies is not None:
            # The common case, a new key, in one request on the bus's connection; a key that
            # exists (or a tombstone a delete left) goes on through nats-py's create, which
            # tells which (and re-creates over a tombstone).
            try:
                await replies.publish(
                    self._subjects + encoded, value, _ATTEMPT_TIMEOUT, _CREATE_HEADERS
                )
                return False
            except nats.js.errors.APIError as exc:
                if exc.err_code not in _WRONG_LAST_SEQUENCE:
                    raise
        for _ in range(3):
            try:
                await kv.create(encoded, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                try:
                    entry = await kv.get(encoded)
                except nats.js.errors.KeyNotFoundError:
                    continue  # expired between the failed create and its check
                held = entry.value or b""
                if retry and held == value:
                    return False  # our own record: the answer to an earlier attempt was lost
                if not leased or not _lapsed(held):
                    return True  # handled, or being handled
                try:
                    await kv.update(encoded, value, last=entry.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    return True  # another process took the lapsed claim first
                return False
            except nats.js.errors.KeyNotFoundError:
                continue  # expired between the failed create and its check: try again
            return False
        return True

    async def done(self, key: str) -> None:
        """Mark ``key`` handled for the rest of its time to live."""
        encoded = encode_token(key)
        try:
            await self._done_once(encoded, False)
        except (nats.errors.Error, TimeoutError) as exc:
            first = exc
        else:
            return
        step = functools.partial(self._done_once, encoded)
        await self._retrying(functools.partial(_marking, key), step, first)

    async def _done_once(self, encoded: str, _retry: bool) -> None:
        kv = self._kv or await self._bucket()
        replies = self._replies()
        if replies is None:
            await kv.put(encoded, b"done")
        else:
            await replies.publish(self._subjects + encoded, b"done", _ATTEMPT_TIMEOUT)

    async def forget(self, key: str) -> None:
        """Drop ``key`` (no error if absent), so its next :meth:`seen` returns False."""
        encoded = encode_token(key)

        async def step(_retry: bool) -> None:
            kv = self._kv or await self._bucket()
            await kv.delete(encoded)

        try:
            await step(False)
        except (nats.errors.Error, TimeoutError) as exc:
            await self._retrying(lambda: f"forget key {key!r}", step, exc)

    async def close(self) -> None:
        """Close the connection, if the store opened its own (from a URL)."""
        self._kv = None
        await self._conn.close()


# What a failed idempotency call was doing, for its error (no closure: see _publish_stream).
def _recording(key: str) -> str:
    return f"record key {key!r}"


def _marking(key: str) -> str:
    return f"mark key {key!r} done"


#: A KV create: the write is refused if the key has a value.
_CREATE_HEADERS: Final = {"Nats-Expected-Last-Subject-Sequence": "0"}
#: JetStream error codes of a refused expected-last-sequence write (the key exists).
_WRONG_LAST_SEQUENCE: Final = (10071, 10164)


def _lapsed(held: bytes) -> bool:
    """Whether a KV record is a claim whose lease has passed (``claim:<deadline>:<token>``, or
    ``claim:<deadline>`` as written before claims had tokens); ``done`` and a plain mark
    (``seen:<token>``, or empty) count as handled.

    Raises:
        ValueError: the claim's deadline is not a number (nothing this store writes).
    """
    if not held.startswith(b"claim:"):
        return False
    return float(held[6:].split(b":", 1)[0]) <= time.time()


if TYPE_CHECKING:
    from govbus.bus.base import Bus

    # mypy checks here that the classes structurally satisfy their protocols.
    _PROTOCOL_CHECK: type[Bus] = NatsBus
    _STORE_CHECK: type[DeadLetterStore] = NatsDeadLetterStore
