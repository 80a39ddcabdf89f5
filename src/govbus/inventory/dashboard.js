// govbus inventory dashboard: read-only; fetches /v1/inventory and /v1/policy with the bearer
// token and redraws every few seconds. Everything from the server is shown with textContent,
// never parsed as HTML.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const KEY = "govbus.inventory.token";
  let timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function token() { return sessionStorage.getItem(KEY); }

  function takeTokenFromFragment() {
    const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
      // Keep the secret out of the address bar and the history.
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  function setStatus(text, error) {
    const line = $("status-line");
    line.textContent = text;
    line.classList.toggle("error", Boolean(error));
  }

  function showLogin(message) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    $("content").hidden = true;
    $("login").hidden = false;
    setStatus(message || "Enter a token to see the inventory.", Boolean(message));
  }

  async function getJson(path) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const response = await fetch(path, { headers: headers, cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      const err = new Error("the token was refused (" + response.status + ")");
      err.auth = true;
      throw err;
    }
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  function badge(kind, value) { return el("span", value.replace("_", " "), "badge " + kind + "-" + value); }

  function cell(row, content, className) {
    const td = el("td", typeof content === "object" ? null : content, className);
    if (content && typeof content === "object") td.appendChild(content);
    row.appendChild(td);
    return td;
  }

  function when(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    return new Date(iso).toLocaleString();
  }

  function drawAgents(agents) {
    const body = $("agents").tBodies[0];
    body.replaceChildren();
    for (const agent of agents) {
      const row = el("tr", null, "row-" + agent.status);
      row.dataset.agent = agent.name;
      const name = cell(row, agent.name, "nowrap");
      name.title = agent.description + " (version " + agent.version + ")";
      cell(row, badge("status", agent.status)).dataset.field = "status";
      if (agent.paused) row.lastChild.title = "paused by " + agent.paused.by + (agent.paused.reason ? ": " + agent.paused.reason : "");
      cell(row, badge("risk", agent.risk)).dataset.field = "risk";
      cell(row, agent.owner);
      cell(row, agent.handles.join(", "));
      cell(row, agent.model ? agent.model.provider + "/" + agent.model.name : "deterministic", "nowrap");
      cell(row, agent.fallback || "none", "nowrap");
      cell(row, agent.clearance + " · " + (agent.region || "no region"));
      const c = agent.counters;
      cell(row, c.handled, "num");
      cell(row, c.denied, "num");
      cell(row, c.fallbacks, "num");
      cell(row, c.failures, "num");
      cell(row, when(c.last_seen), "nowrap");
      body.appendChild(row);
    }
    $("agent-count").textContent = "(" + agents.length + ")";
  }

  function drawCounts(tableId, counts) {
    const body = $(tableId).tBodies[0];
    body.replaceChildren();
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
    if (entries.length === 0) {
      const row = el("tr");
      const td = cell(row, "none", "empty");
      td.colSpan = 2;
      body.appendChild(row);
      return;
    }
    for (const [name, count] of entries) {
      const row = el("tr");
      row.dataset.key = name;
      cell(row, name);
      cell(row, count, "num");
      body.appendChild(row);
    }
  }

  function drawPolicy(policy) {
    $("policy-name").textContent = policy.name;
    $("policy-version").textContent = policy.version;
    $("policy-mode").textContent = policy.mode;
    $("policy-sha").textContent = policy.sha256;
    const approval = $("policy-approval");
    approval.replaceChildren();
    if (policy.approved) {
      approval.appendChild(el("span", "Approved", "approved"));
      approval.appendChild(document.createTextNode(
        " by " + policy.approved_by + " on " + policy.approved_on +
        (policy.approval_reference ? " (" + policy.approval_reference + ")" : "")));
    } else {
      approval.appendChild(el("span", "NOT APPROVED", "unapproved"));
      approval.appendChild(document.createTextNode(
        policy.approval_error ? " (" + policy.approval_error + ")" : " (no approval record for this sha256)"));
    }
    const checks = $("policy-checks");
    checks.replaceChildren();
    if (policy.checks) {
      checks.textContent = policy.checks.length + " checks: " +
        policy.checks.map((c) => c.id + (c.mode === "monitor" ? " (monitor)" : "")).join(", ");
    }
  }

  async function refresh() {
    timer = null;
    try {
      const [inventory, policy] = await Promise.all([getJson("v1/inventory"), getJson("v1/policy")]);
      $("app-name").textContent = "· " + inventory.app.name;
      document.title = "govbus inventory · " + inventory.app.name;
      drawPolicy(policy);
      drawAgents(inventory.agents);
      const recent = inventory.recent;
      $("recent-window").textContent = "(last " + Math.round(recent.window_seconds / 60) + " min)";
      drawCounts("recent-denials", recent.denied_by_check);
      drawCounts("recent-fallbacks", recent.fallbacks_by_agent);
      drawCounts("recent-failures", recent.failures_by_agent);
      $("login").hidden = true;
      $("content").hidden = false;
      document.body.dataset.loaded = "true";
      setStatus("Updated " + new Date().toLocaleTimeString() + " · app " + inventory.app.state +
        " · node " + inventory.app.node);
    } catch (err) {
      if (err.auth) {
        const had = token();
        sessionStorage.removeItem(KEY);
        showLogin(had ? "The server refused the token: " + err.message + "." : null);
        return;
      }
      setStatus("Could not refresh: " + err.message + " (retrying)", true);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function start() {
    $("refresh-seconds").textContent = String(REFRESH_MS / 1000);
    takeTokenFromFragment();
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      setStatus("Loading…");
      refresh();
    });
    $("forget").addEventListener("click", (event) => {
      event.preventDefault();
      sessionStorage.removeItem(KEY);
      showLogin();
    });
    refresh();  // a server run with --insecure-no-auth answers without a token
  }

  start();
})();
