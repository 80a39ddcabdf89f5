"""The inventory endpoint over real HTTP, served by uvicorn on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import govbus
from govbus import Context, Message
from govbus.audit import MemoryAuditStore
from govbus.errors import AuditUnavailableError
from govbus.inventory import Activity
from tests.unit.inventory.support import ADMIN, CUSTOMER, READ, Served, advice, make_app


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with Served(make_app(tmp_path)) as server:
        yield server


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10.0) as http:
        yield http


def read(served: Served) -> dict[str, str]:
    return served.headers(READ)


def admin(served: Served) -> dict[str, str]:
    return served.headers(ADMIN)


def audited(app: govbus.App, outcome: str) -> list[dict[str, object]]:
    store = app.audit
    assert isinstance(store, MemoryAuditStore)
    return [r.data for r in store.stored if r.kind == "admin" and r.outcome == outcome]


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/inventory", "/v1/inventory/advisor", "/v1/policy", "/metrics"]
)
def test_read_calls_without_a_token_are_401_with_a_json_error(
    client: httpx.Client, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token-0123456789", f"Basic {READ}", "Bearer", f"bearer  {READ[:-1]}"],
)
def test_a_wrong_token_or_scheme_is_401(client: httpx.Client, header: str) -> None:
    response = client.get("/v1/inventory", headers={"Authorization": header})
    assert response.status_code == 401, header


def test_the_scheme_is_case_insensitive(client: httpx.Client) -> None:
    response = client.get("/v1/inventory", headers={"Authorization": f"bearer {READ}"})
    assert response.status_code == 200


def test_a_read_token_cannot_pause_403_and_nothing_changes(
    served: Served, client: httpx.Client
) -> None:
    response = client.post("/v1/agents/advisor/pause", headers=read(served))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not served.call(lambda: served.app.orchestrator.killswitch.is_paused("advisor"))


def test_unauthenticated_callers_learn_nothing_about_agents(client: httpx.Client) -> None:
    """401 comes before 404: without a token, a known and an unknown agent look the same."""
    known = client.post("/v1/agents/advisor/pause")
    unknown = client.post("/v1/agents/nobody/pause")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()


def test_the_admin_token_also_reads(served: Served, client: httpx.Client) -> None:
    assert client.get("/v1/inventory", headers=admin(served)).status_code == 200


def test_health_and_openapi_need_no_token(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


# -- reading -------------------------------------------------------------------------------------


def test_inventory_lists_every_agent_and_the_approved_policy(
    served: Served, client: httpx.Client
) -> None:
    doc = client.get("/v1/inventory", headers=read(served)).json()
    assert [a["name"] for a in doc["agents"]] == ["advisor", "flaky", "snapshot"]
    assert doc["app"]["state"] == "running"
    assert doc["policy"]["sha256"] == served.app.policy.sha256
    assert doc["policy"]["approved"] and doc["policy"]["approved_by"] == "Chief Risk Officer"
    one = client.get("/v1/inventory/advisor", headers=read(served)).json()
    assert one["risk"] == "high" and one["fallback"] == "snapshot"


def test_an_unknown_agent_is_404(served: Served, client: httpx.Client) -> None:
    response = client.get("/v1/inventory/nobody", headers=read(served))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_agent",
        "message": "no agent named 'nobody'",
    }
    response = client.post("/v1/agents/nobody/pause", headers=admin(served))
    assert response.status_code == 404


def test_an_unknown_path_is_404_and_a_wrong_method_405_as_json(
    served: Served, client: httpx.Client
) -> None:
    response = client.get("/v2/nothing", headers=read(served))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.delete("/v1/inventory", headers=read(served))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]
    response = client.get("/v1/agents/advisor/pause", headers=admin(served))
    assert response.status_code == 405


def test_policy_endpoint_has_hash_approval_and_summary(
    served: Served, client: httpx.Client
) -> None:
    doc = client.get("/v1/policy", headers=read(served)).json()
    assert doc["name"] == "inventory-test" and doc["sha256"] == served.app.policy.sha256
    assert doc["approved"] is True and doc["approval_reference"] == "RISK-7"
    assert "advisors-only (rbac)" in doc["summary"]
    assert doc["checks"][0]["summary"]


def test_counters_follow_real_traffic(served: Served, client: httpx.Client) -> None:
    served.run(lambda: served.app.request(advice()))
    served.run(lambda: served.app.request(advice(actor=CUSTOMER)))
    served.run(lambda: served.app.request(Message(type="flaky.run", sender="web")))
    doc = client.get("/v1/inventory", headers=read(served)).json()
    by_name = {a["name"]: a for a in doc["agents"]}
    assert by_name["advisor"]["counters"]["handled"] == 1
    assert by_name["advisor"]["counters"]["denied"] == 1
    assert by_name["advisor"]["counters"]["last_seen"] is not None
    assert by_name["flaky"]["counters"]["failures"] == 1
    assert by_name["flaky"]["status"] == "degraded"  # failed within the recent window
    assert by_name["advisor"]["status"] == "healthy"
    assert doc["recent"]["denied_by_check"] == {"advisors-only": 1}
    assert doc["recent"]["failures_by_agent"] == {"flaky": 1}


def test_metrics_are_prometheus_text_with_live_values(served: Served, client: httpx.Client) -> None:
    served.run(lambda: served.app.request(advice(actor=CUSTOMER)))
    served.run(lambda: served.app.request(advice(fail=True)))
    response = client.get("/metrics", headers=read(served))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples["govbus_messages_denied_total", (("check", "advisors-only"),)] == 1
    assert samples["govbus_fallbacks_total", (("cause", "exception"),)] == 1
    assert samples["govbus_agent_fallbacks_total", (("agent", "advisor"),)] == 1
    assert samples["govbus_agent_status", (("agent", "advisor"), ("status", "degraded"))] == 1
    assert samples["govbus_agent_status", (("agent", "advisor"), ("status", "healthy"))] == 0
    assert samples["govbus_agent_paused", (("agent", "snapshot"),)] == 0
    policy = [k for k in samples if k[0] == "govbus_policy_info"]
    assert dict(policy[0][1])["approved"] == "true"


# -- the kill switch -----------------------------------------------------------------------------


def test_pause_routes_messages_to_the_fallback_and_is_audited_with_the_caller(
    served: Served, client: httpx.Client
) -> None:
    response = client.post(
        "/v1/agents/advisor/pause", headers=admin(served), json={"reason": "wrong advice"}
    )
    assert response.status_code == 200
    entry = response.json()
    assert entry["status"] == "paused"
    assert entry["paused"]["by"] == "ops-oncall" and entry["paused"]["reason"] == "wrong advice"
    listed = client.get("/v1/inventory/advisor", headers=read(served)).json()
    assert listed["status"] == "paused"

    reply = served.run(lambda: served.app.request(advice()))
    assert reply.payload == {"by": "snapshot"}
    assert reply.metadata["fallback_cause"] == "agent_paused"
    assert audited(served.app, "pause") == [
        {"agent": "advisor", "by": "ops-oncall", "reason": "wrong advice", "mode": "fallback"}
    ]

    response = client.post("/v1/agents/advisor/resume", headers=admin(served))
    assert response.status_code == 200 and response.json()["status"] != "paused"
    reply = served.run(lambda: served.app.request(advice()))
    assert reply.payload == {"by": "advisor"}
    assert audited(served.app, "resume")[0]["by"] == "ops-oncall"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"mode": "stop"}', "application/json", 400),
        (b'{"reason": 7}', "application/json", 400),
        (b'{"reason": "x", "who": "me"}', "application/json", 400),
        (b"not json", "application/json", 400),
        (b"[1]", "application/json", 400),
        (b"reason=x", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_bad_pause_body_is_refused_and_nothing_changes(
    served: Served, client: httpx.Client, body: bytes, content_type: str, status: int
) -> None:
    headers = {**admin(served), "Content-Type": content_type}
    response = client.post("/v1/agents/advisor/pause", headers=headers, content=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] in ("bad_request", "unsupported_media_type")
    assert not served.call(lambda: served.app.orchestrator.killswitch.is_paused("advisor"))


def test_an_agent_registered_at_runtime_appears_in_the_inventory(
    served: Served, client: httpx.Client
) -> None:
    before = client.get("/v1/inventory", headers=read(served)).json()
    assert "late" not in [a["name"] for a in before["agents"]]

    def register() -> None:
        @served.app.agent("late", handles="late.run", owner="Night shift", risk="critical")
        async def late(msg: Message, ctx: Context) -> Message:
            return ctx.reply("late.done", {})

    served.call(register)
    entry = client.get("/v1/inventory/late", headers=read(served)).json()
    assert (entry["owner"], entry["risk"], entry["status"]) == (
        "Night shift",
        "critical",
        "healthy",
    )
    reply = served.run(lambda: served.app.request(Message(type="late.run", sender="web")))
    assert reply.type == "late.done"  # it is attached, not only listed
    entry = client.get("/v1/inventory/late", headers=read(served)).json()
    assert entry["counters"]["handled"] == 1


# -- readiness -----------------------------------------------------------------------------------


class BreakableAudit(MemoryAuditStore):
    """A memory store whose flush fails while ``broken`` (a database that went away)."""

    broken = False

    async def flush(self) -> None:
        if self.broken:
            raise AuditUnavailableError("database unreachable")
        await super().flush()


def test_readyz_is_503_with_the_reason_while_the_audit_store_fails(tmp_path: Path) -> None:
    store = BreakableAudit()
    app = make_app(tmp_path, audit=store)
    with Served(app) as served, httpx.Client(base_url=served.url) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "orchestrator": "running", "bus": "started", "audit": "writable"
        }  # fmt: skip
        store.broken = True
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert "audit store does not accept writes (audit_unavailable)" in ready.json()["reason"]
        assert http.get("/healthz").status_code == 200  # alive, just not ready
        store.broken = False
        assert http.get("/readyz").status_code == 200


def test_insecure_mode_serves_without_a_token_and_audits_anonymous(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with (
        Served(app, tokens=None, insecure=True) as served,
        httpx.Client(base_url=served.url) as http,
    ):
        assert http.get("/v1/inventory").status_code == 200
        assert http.post("/v1/agents/flaky/pause").json()["status"] == "paused"
        assert audited(app, "pause")[0]["by"] == "anonymous (insecure-no-auth)"


def test_without_tokens_the_endpoint_refuses_to_exist(tmp_path: Path) -> None:
    from govbus.errors import ConfigError
    from govbus.inventory import create_asgi_app

    with pytest.raises(ConfigError, match="bearer token"):
        create_asgi_app(make_app(tmp_path), tokens=None)


def test_the_dashboard_page_loads_only_its_own_assets(served: Served, client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/dashboard.js", "/dashboard.css"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert "http://" not in response.text and "https://" not in response.text
    assert "innerHTML" not in client.get("/dashboard.js").text


def test_an_activity_can_be_shared_with_the_server(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    activity = Activity(app, window=120.0)
    with Served(app, activity=activity) as served, httpx.Client(base_url=served.url) as http:
        doc = http.get("/v1/inventory", headers=served.headers()).json()
        assert doc["recent"]["window_seconds"] == 120.0
