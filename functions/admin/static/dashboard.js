// The Voiceline dashboard: asks the admin API for analytics and calls with the tenant's key, draws them with
// Chart.js, and shows one call's transcript at #call/<sid>. Everything drawn stays readable from
// window.voicelineDashboard, so a browser test can compare it with the API's own numbers.
"use strict";

(() => {
  const KEY_STORAGE = "voiceline.apiKey"; // sessionStorage: gone when the tab closes, never sent as a cookie
  const REQUEST_TIMEOUT_MS = 15000;
  const LATEST_CALLS = 20;
  const COLORS = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d"];

  const dashboard = {
    charts: {}, // canvas id -> Chart
    query: null, // the /api/analytics query the charts were drawn from
    analytics: null,
    calls: null,
    call: null, // the call shown at #call/<sid>
    shown: null, // what is drawn: "overview" or "call/<sid>"
    agents: null,
    error: null,
  };
  window.voicelineDashboard = dashboard;

  const $ = (selector) => document.querySelector(selector);

  class KeyRejected extends Error {}

  function setState(state, message) {
    document.body.dataset.state = state;
    const box = $("#message");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function show(view) {
    for (const id of ["key-view", "overview", "call-view"]) $(`#${id}`).hidden = id !== view;
    $("#controls").hidden = view === "key-view";
  }

  async function api(path, params = {}) {
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE)}` },
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.status === 401) throw new KeyRejected("the API key was not accepted");
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${url.pathname}: HTTP ${response.status} ${JSON.stringify(body.detail ?? "")}`);
    }
    return response.json();
  }

  // ---- the range and the agent filter ----------------------------------------------------------------------

  function rangeQuery() {
    const days = Number($("#range").value);
    const now = new Date();
    const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - (days - 1)));
    return { from: from.toISOString(), to: now.toISOString(), granularity: "day", agent: $("#agent").value };
  }

  async function loadAgents() {
    const select = $("#agent");
    const chosen = select.value;
    const { agents } = await api("/api/agents");
    select.replaceChildren(new Option("All agents", ""),
      ...agents.map((agent) => new Option(`${agent.name} (${agent.agent_id})`, agent.agent_id)));
    select.value = agents.some((agent) => agent.agent_id === chosen) ? chosen : "";
    return agents;
  }

  // ---- charts ---------------------------------------------------------------------------------------------

  function draw(id, type, labels, datasets, options = {}) {
    const data = {
      labels,
      datasets: datasets.map((dataset, index) => ({
        backgroundColor: type === "doughnut" ? COLORS : COLORS[index % COLORS.length],
        borderColor: type === "doughnut" ? "#fff" : COLORS[index % COLORS.length],
        ...dataset,
      })),
    };
    const existing = dashboard.charts[id];
    if (existing) {
      existing.data = data;
      existing.update();
      return;
    }
    dashboard.charts[id] = new window.Chart($(`#${id}`), {
      type,
      data,
      options: {
        animation: false, // drawn once, as the numbers are: tests and screenshots see the final picture
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: datasets.length > 1 || type === "doughnut" } },
        ...options,
      },
    });
  }

  const money = (value) => `$${Number(value).toFixed(value && Math.abs(value) < 1 ? 4 : 2)}`;
  const ms = (value) => (value === null || value === undefined ? "–" : `${Math.round(value)} ms`);

  function drawFigures(totals) {
    const figures = [
      ["calls", "Calls", totals.calls],
      ["minutes", "Minutes", Number(totals.minutes).toFixed(1)],
      ["latency-p50", "Answer p50", ms(totals.answer_latency_ms.p50)],
      ["latency-p95", "Answer p95", ms(totals.answer_latency_ms.p95)],
      ["interruptions", "Interruptions", totals.interruptions],
      ["transfers", "Transfers", totals.transfers],
      ["bookings", "Bookings", totals.bookings],
      ["cost", "Cost", money(totals.cost_usd)],
    ];
    $("#figures").replaceChildren(...figures.map(([name, label, value]) => {
      const figure = document.createElement("div");
      figure.dataset.figure = name;
      const term = document.createElement("dt");
      term.textContent = label;
      const detail = document.createElement("dd");
      detail.textContent = String(value);
      figure.append(term, detail);
      return figure;
    }));
  }

  function drawAnalytics(analytics) {
    const { series, totals } = analytics;
    const buckets = series.map((point) => point.bucket);
    const counts = { beginAtZero: true, ticks: { precision: 0 } }; // no "0.5 calls" on an axis
    const stacked = { scales: { x: { stacked: true }, y: { stacked: true, ...counts } } };
    const fromZero = { scales: { y: { beginAtZero: true } } };
    const colored = (color) => ({ backgroundColor: color, borderColor: color });
    draw("chart-calls", "bar", buckets, [{ label: "Calls", data: series.map((point) => point.calls) }],
      { scales: { y: counts } });
    draw("chart-minutes", "bar", buckets, [{ label: "Minutes", data: series.map((point) => point.minutes) }],
      fromZero);
    draw("chart-latency", "line", buckets, [
      { label: "p50", data: series.map((point) => point.answer_latency_ms.p50), spanGaps: true },
      { label: "p95", data: series.map((point) => point.answer_latency_ms.p95), spanGaps: true },
    ], fromZero);
    const reasons = Object.keys(totals.end_reasons).sort();
    draw("chart-end-reasons", "doughnut", reasons,
      [{ label: "Calls", data: reasons.map((reason) => totals.end_reasons[reason]) }]);
    const tools = Object.keys(totals.tools).sort();
    const tool = (name) => totals.tools[name];
    draw("chart-tools", "bar", tools, [
      { label: "Succeeded", data: tools.map((name) => tool(name).calls - tool(name).errors - tool(name).declined),
        ...colored("#16a34a") },
      { label: "Declined", data: tools.map((name) => tool(name).declined), ...colored("#ca8a04") }, // a refusal
      { label: "Failed", data: tools.map((name) => tool(name).errors), ...colored("#dc2626") },
    ], stacked);
    draw("chart-cost", "bar", buckets, [{ label: "Cost (USD)", data: series.map((point) => point.cost_usd) }],
      fromZero);
    drawFigures(totals);
  }

  // ---- the latest calls --------------------------------------------------------------------------------------

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text ?? "–";
    return td;
  }

  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "–");
  const seconds = (value) => (value === null || value === undefined ? "–" : `${Math.round(value)} s`);

  function drawCalls(calls) {
    $("#calls tbody").replaceChildren(...calls.map((call) => {
      const row = document.createElement("tr");
      row.dataset.callSid = call.call_sid;
      const started = cell("");
      const link = document.createElement("a");
      link.href = `#call/${encodeURIComponent(call.call_sid)}`;
      link.textContent = when(call.started_at);
      started.append(link);
      row.append(started, cell(call.agent_id), cell(call.direction), cell(call.from_number), cell(call.to_number),
        cell(seconds(call.duration_s)), cell(call.end_reason));
      return row;
    }));
  }

  async function fetchOverview() {
    const query = rangeQuery();
    const [analytics, page] = await Promise.all([
      api("/api/analytics", query),
      api("/api/calls", { agent: query.agent, from: query.from, limit: String(LATEST_CALLS) }),
    ]);
    return () => {
      Object.assign(dashboard, { query, analytics, calls: page.calls });
      drawAnalytics(analytics);
      drawCalls(page.calls);
      show("overview");
    };
  }

  // ---- one call's transcript -----------------------------------------------------------------------------------

  const json = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));
  const offset = (atMs) => {
    const total = Math.floor(atMs / 1000);
    return `${String(Math.floor(total / 60)).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;
  };

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function toolCall(data) {
    const box = element("div", "tool-call");
    const took = data.duration_ms === null || data.duration_ms === undefined ? "" : ` in ${ms(data.duration_ms)}`;
    box.append(element("div", "tool-name", `tool ${data.name} → ${data.outcome}${took}`));
    box.append(element("div", "label", "arguments"), element("pre", "tool-args", json(data.arguments)));
    const reply = data.output || {};
    const result = reply.ok ? reply.output : reply.error;
    box.append(element("div", "label", reply.ok ? "result" : "error"), element("pre", "tool-result", json(result)));
    return box;
  }

  function eventLine(event) {
    const data = event.data || {};
    const item = element("li", `event ${event.kind}`);
    item.dataset.kind = event.kind;
    item.append(element("span", "at", offset(event.at_ms)));
    if (event.kind === "transcript") {
      item.classList.add(event.role);
      item.append(element("span", "who", event.role === "agent" ? "Agent" : "Caller"),
        element("span", "text", event.text));
      if (data.interrupted) item.append(element("span", "note", "cut off by the caller"));
    } else if (event.kind === "tool_call") {
      item.append(toolCall(data));
    } else if (event.kind === "interruption") {
      item.append(element("span", "text",
        `Caller interrupted: the agent was cut at ${ms(data.audio_end_ms)} of ${ms(data.generated_ms)} generated`));
    } else {
      item.append(element("span", "who", event.kind.replace("_", " ")),
        element("span", "text", [event.text, Object.keys(data).length ? json(data) : ""].filter(Boolean).join(" ")));
    }
    return item;
  }

  function drawCall(call) {
    dashboard.call = call;
    $("#call-title").textContent = `Call ${call.call_sid}`;
    const facts = [
      ["Agent", call.agent_id], ["Direction", call.direction], ["From", call.from_number], ["To", call.to_number],
      ["Started (UTC)", when(call.started_at)], ["Duration", seconds(call.duration_s)],
      ["End reason", call.end_reason ?? "–"], ["Interruptions", call.interruptions ?? "–"],
      ["Turn latency p50 / p95", `${ms(call.turn_latency_p50_ms)} / ${ms(call.turn_latency_p95_ms)}`],
    ];
    if (call.cost && call.cost.total !== undefined) facts.push(["Cost", money(call.cost.total)]);
    $("#call-facts").replaceChildren(...facts.flatMap(([term, value]) => [element("dt", "", term),
      element("dd", "", String(value))]));
    $("#transcript").replaceChildren(...call.events.map(eventLine));
    show("call-view");
  }

  async function fetchCall(callSid) {
    const call = await api(`/api/calls/${encodeURIComponent(callSid)}`);
    return () => drawCall(call);
  }

  // ---- what the address says to show --------------------------------------------------------------------------

  let latest = 0; // the newest route(): an older one still loading must not draw over it

  async function route() {
    const mine = ++latest;
    if (!sessionStorage.getItem(KEY_STORAGE)) {
      show("key-view");
      setState("signed-out");
      return;
    }
    const callSid = window.location.hash.startsWith("#call/")
      ? decodeURIComponent(window.location.hash.slice("#call/".length)) : null;
    setState("loading", "Loading…");
    try {
      if (!dashboard.agents) dashboard.agents = await loadAgents();
      const drawIt = callSid ? await fetchCall(callSid) : await fetchOverview();
      if (mine !== latest) return;
      drawIt();
      dashboard.shown = callSid ? `call/${callSid}` : "overview";
      dashboard.error = null;
      setState("ready");
    } catch (error) {
      if (mine !== latest) return;
      dashboard.error = String(error.message || error);
      if (error instanceof KeyRejected) {
        forgetKey();
        setState("signed-out", "That key was not accepted. Enter a valid admin API key.");
      } else {
        setState("error", `Could not load: ${dashboard.error}`);
      }
    }
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY_STORAGE);
    dashboard.agents = null;
    show("key-view");
  }

  function start() {
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key").value.trim();
      $("#key").value = "";
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      route();
    });
    $("#sign-out").addEventListener("click", () => {
      forgetKey();
      window.location.hash = "";
      route();
    });
    $("#range").addEventListener("change", route);
    $("#agent").addEventListener("change", route);
    window.addEventListener("hashchange", route);
    route();
  }

  start();
})();
