/* seawall dashboard: follows /dashboard.stream (server-sent events, one cluster view each)
 * and draws a card per command and a row per pool. Plain DOM and inline SVG, no library.
 * Everything from the server is set as text or attributes, never as HTML. */
"use strict";

(function () {
  // A front with an access token: the page is opened with ?access_token=..., the stream needs it too.
  const ACCESS_TOKEN = new URLSearchParams(location.search).get("access_token");
  const STREAM_URL = "/dashboard.stream" + (ACCESS_TOKEN ? `?access_token=${encodeURIComponent(ACCESS_TOKEN)}` : "");
  const STALE_AFTER_MS = 3000;      // no view for this long: "connection lost"
  const RECONNECT_AFTER_MS = 6000;  // ... and for this long: drop the stream and open a new one
  const RECONNECT_DELAY_MS = 2000;  // after the server refused or closed the stream for good
  const STALE_BROKER_S = 2.5;       // a broker not heard from for this long is shown as silent
  const HISTORY_POINTS = 120;       // rate_history: one rate per second, oldest first
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SEVERITY = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };
  const PERCENTILES = [["p50", "50"], ["p90", "90"], ["p99", "99"], ["p99.5", "99.5"], ["max", "100"]];
  const COUNTS = [
    ["success", "success", ["SUCCESS"]],
    ["short-circuited", "short-circ.", ["SHORT_CIRCUITED"]],
    ["rejected", "rejected", ["THREAD_POOL_REJECTED", "SEMAPHORE_REJECTED"]],
    ["timeouts", "timeouts", ["TIMEOUT"]],
    ["failures", "failures", ["FAILURE", "WORKER_LOST"]],
  ];

  const commandsBox = document.getElementById("commands");
  const poolsBody = document.querySelector("#pools tbody");
  const connection = document.getElementById("connection");
  const banner = document.getElementById("banner");
  const cards = new Map();  // command key -> {root, refs}
  let sortBy = new URLSearchParams(location.search).get("sort") || "error";
  let lastView = null;
  let lastMessageAt = 0;
  let source = null;
  let reconnectTimer = null;

  // -- small DOM helpers ------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function number(value) {
    return typeof value === "number" && isFinite(value) ? value : 0;
  }

  function formatCount(value) {
    return number(value).toLocaleString("en-US");
  }

  function formatMs(value) {
    if (typeof value !== "number" || !isFinite(value)) return "–";
    return value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString("en-US");
  }

  function formatRate(perSecond) {
    return perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond).toLocaleString("en-US");
  }

  // -- what a command's figures mean --------------------------------------------------------

  function health(command) {
    if (command.breaker === "OPEN") return "red";
    const pct = number(command.error_pct);
    if (pct >= 25) return "red";
    if (pct >= 10) return "orange";
    if (pct >= 1) return "yellow";
    return "green";
  }

  function windowSeconds(command) {
    return number(command.settings && command.settings.window_s) || 10;
  }

  function ratePerSecond(command) {
    return number(command.request_count) / windowSeconds(command);
  }

  function radius(perSecond) {  // 5 px idle, ~17 px at 100/s, 30 px cap: volume at a glance
    return Math.min(30, 5 + 6 * Math.log10(1 + perSecond));
  }

  function compare(a, b) {
    const [keyA, cmdA] = a, [keyB, cmdB] = b;
    if (sortBy === "volume") return number(cmdB.request_count) - number(cmdA.request_count) || keyA.localeCompare(keyB);
    if (sortBy === "name") return keyA.localeCompare(keyB);
    return (SEVERITY[cmdB.breaker] || 0) - (SEVERITY[cmdA.breaker] || 0)
      || number(cmdB.error_pct) - number(cmdA.error_pct)
      || number(cmdB.request_count) - number(cmdA.request_count)
      || keyA.localeCompare(keyB);
  }

  // -- one card per command ---------------------------------------------------------------

  function buildCard(key) {
    const refs = {};
    refs.name = el("div", { class: "card-name", text: key, title: key });
    refs.breaker = el("span", { class: "breaker-state" });
    refs.breakerMix = el("span", { class: "breaker-mix" });
    refs.sub = el("div", { class: "card-sub" });
    refs.forced = el("span", { class: "forced" });
    refs.sparkFill = el("svg:path", { class: "spark-fill" });
    refs.sparkLine = el("svg:polyline", { class: "spark-line" });
    refs.circle = el("svg:circle", { class: "health", cx: "36", cy: "36", r: "5" });
    const plot = el("svg:svg", { viewBox: `0 0 ${HISTORY_POINTS} 72`, preserveAspectRatio: "none", class: "spark" },
      el("svg:line", { class: "spark-base", x1: "0", y1: "71", x2: String(HISTORY_POINTS), y2: "71" }),
      refs.sparkFill, refs.sparkLine);
    const dot = el("svg:svg", { viewBox: "0 0 72 72", width: "72", height: "72", class: "dot" }, refs.circle);
    refs.errorPct = el("div", { class: "error-pct" });
    refs.rate = el("div", { class: "rate" });
    refs.peak = el("div", { class: "figure-label" });
    refs.errorWindow = el("div", { class: "figure-label" });
    const figures = el("div", { class: "figures" }, refs.errorPct, refs.errorWindow,
      refs.rate, refs.peak);
    refs.counts = {};
    const counts = el("div", { class: "counts" });
    for (const [name, label, events] of COUNTS) {
      refs.counts[name] = el("b", { class: `count-${name}` });
      counts.append(el("div", { title: events.join(" + ") }, refs.counts[name], el("span", { text: label })));
    }
    refs.latencyTitle = el("div", { class: "latency-title" });
    refs.latency = {};
    const latencyRow = el("div", { class: "latency-row" });
    for (const [label] of PERCENTILES) {
      refs.latency[label] = el("b", { class: `latency-${label.replace(".", "_")}` });
      latencyRow.append(el("div", {}, refs.latency[label], el("span", { text: label })));
    }
    const root = el("article", { class: "card", "data-command": key },
      el("div", { class: "card-head" }, refs.name, refs.forced, el("span", { class: "breaker" }, refs.breaker, refs.breakerMix)),
      refs.sub,
      el("div", { class: "card-main" }, el("div", { class: "plot" }, plot, dot), figures),
      counts,
      el("div", { class: "latency" }, refs.latencyTitle, latencyRow));
    refs.breakerBox = root.querySelector(".breaker");
    return { root, refs };
  }

  function updateCard(card, key, command) {
    const { root, refs } = card;
    const state = SEVERITY[command.breaker] !== undefined ? command.breaker : "CLOSED";
    const colour = health(command);
    const perSecond = ratePerSecond(command);
    root.dataset.breaker = state;
    root.dataset.health = colour;
    refs.breakerBox.dataset.state = state;
    refs.breaker.textContent = state;
    const votes = command.breakers || {};
    const brokers = Object.values(votes).reduce((sum, n) => sum + number(n), 0);
    const agreeing = number(votes[state]);
    refs.breakerMix.textContent = brokers > 1 && agreeing < brokers ? ` ${agreeing}/${brokers}` : "";
    refs.breakerBox.title = Object.entries(votes).map(([name, n]) => `${name}: ${n} broker(s)`).join(", ");

    const hosts = number(command.hosts);
    const parts = [command.pool ? `pool ${command.pool}` : "in the caller", (command.isolation || "").toLowerCase(),
      `${hosts} host${hosts === 1 ? "" : "s"}`, `${number(command.concurrent)} running`];
    refs.sub.textContent = parts.join(" · ");
    refs.forced.textContent = command.force && command.force !== "auto" ? `forced ${command.force}` : "";
    refs.sub.dataset.hosts = String(hosts);

    const pct = number(command.error_pct);
    refs.errorPct.textContent = `${pct.toFixed(1)} %`;
    refs.errorPct.dataset.value = String(pct);
    refs.errorPct.dataset.health = colour;
    refs.errorWindow.textContent = `errors, last ${windowSeconds(command)} s`;
    refs.rate.textContent = `${formatRate(perSecond)}/s`;
    refs.rate.dataset.value = String(perSecond);

    refs.circle.setAttribute("r", radius(perSecond).toFixed(1));
    refs.circle.dataset.health = colour;
    refs.circle.dataset.breaker = state;
    drawSparkline(refs, Array.isArray(command.rate_history) ? command.rate_history : []);

    const events = command.events || {};
    for (const [name, , names] of COUNTS) {
      const count = names.reduce((sum, event) => sum + number(events[event]), 0);
      refs.counts[name].textContent = formatCount(count);
      refs.counts[name].classList.toggle("zero", count === 0);
    }
    const total = command.latency_total && Object.keys(command.latency_total).length;
    const latency = (total ? command.latency_total : command.latency_execute) || {};
    refs.latencyTitle.textContent = total ? "latency ms, total (queue + run), 60 s" : "latency ms, execute (run), 60 s";
    refs.latencyTitle.dataset.kind = total ? "total" : "execute";
    for (const [label, field] of PERCENTILES) refs.latency[label].textContent = formatMs(latency[field]);
  }

  function drawSparkline(refs, history) {
    const points = history.slice(-HISTORY_POINTS).map(number);
    const peak = Math.max(1, ...points);
    const offset = HISTORY_POINTS - points.length;  // fewer points than 2 min: right-aligned
    const coords = points.map((value, i) => `${offset + i},${(70 - (value / peak) * 64).toFixed(1)}`);
    refs.sparkLine.setAttribute("points", coords.join(" "));
    refs.sparkFill.setAttribute("d", coords.length ? `M${offset},72 L${coords.join(" L")} L${HISTORY_POINTS - 1},72 Z` : "");
    refs.peak.textContent = `peak ${formatRate(Math.max(0, ...points))}/s, 2 min`;
  }

  function renderCommands(commands) {
    const entries = Object.entries(commands || {}).sort(compare);
    for (const key of [...cards.keys()]) {
      if (!(key in (commands || {}))) { cards.get(key).root.remove(); cards.delete(key); }
    }
    entries.forEach(([key, command], index) => {
      let card = cards.get(key);
      if (!card) { card = buildCard(key); cards.set(key, card); }
      updateCard(card, key, command);
      if (commandsBox.children[index] !== card.root) commandsBox.insertBefore(card.root, commandsBox.children[index] || null);
    });
    document.getElementById("no-commands").hidden = entries.length > 0;
  }

  // -- pools table --------------------------------------------------------------------------

  function renderPools(pools) {
    const rows = Object.entries(pools || {}).sort(([a], [b]) => a.localeCompare(b)).map(([name, pool]) => {
      const slots = number(pool.slots), busy = number(pool.busy), queued = number(pool.queued);
      const rejected = number(pool.rolling_rejected), queueSize = number(pool.queue_size);
      const share = slots ? Math.min(100, (100 * busy) / slots) : 0;
      const bar = el("div", { class: "bar" }, el("i", { class: share >= 100 ? "full" : "", style: `width:${share.toFixed(0)}%` }));
      const cell = (field, text, cls) => el("td", { class: `pool-${field}${cls ? " " + cls : ""}`, text });
      return el("tr", { "data-pool": name },
        el("td", { class: "name", text: name }),
        cell("hosts", String(number(pool.hosts))),
        cell("workers", String(number(pool.workers)), number(pool.workers) === 0 ? "alert" : ""),
        cell("slots", String(slots)),
        el("td", { class: "pool-busy" }, el("div", { class: "busy-cell" }, bar, el("span", { text: String(busy) }))),
        cell("queued", `${queued} / ${queueSize}`, queueSize && queued >= queueSize ? "warn" : ""),
        cell("rejected", formatCount(rejected), rejected ? "alert" : ""),
        cell("executed", formatCount(pool.rolling_executed)),
        cell("max-busy", String(number(pool.rolling_max_busy))));
    });
    poolsBody.replaceChildren(...rows);
    document.getElementById("no-pools").hidden = rows.length > 0;
  }

  // -- header -------------------------------------------------------------------------------

  function renderCluster(view) {
    const brokers = Object.values(view.brokers || {});
    const hosts = new Set(brokers.map((broker) => broker.host));
    const silent = brokers.filter((broker) => number(broker.age_s) > STALE_BROKER_S);
    const box = document.getElementById("cluster");
    box.replaceChildren(`${brokers.length} broker${brokers.length === 1 ? "" : "s"} on ${hosts.size} host${hosts.size === 1 ? "" : "s"}`);
    if (!brokers.length) box.append(" · ", el("span", { class: "stale", text: "no broker is reporting metrics" }));
    if (silent.length) box.append(" · ", el("span", { class: "stale", text: `${silent.length} silent` }));
    box.title = brokers.map((b) => `${b.host} pid ${b.pid}: last heard ${number(b.age_s).toFixed(1)} s ago`).join("\n");
  }

  function render(view) {
    lastView = view;
    banner.hidden = !view.error;
    banner.textContent = view.error || "";
    if (view.error) return;
    renderCluster(view);
    renderCommands(view.commands);
    renderPools(view.pools);
    document.body.dataset.updates = String(number(Number(document.body.dataset.updates)) + 1);
  }

  // -- the stream ---------------------------------------------------------------------------

  function setConnection(state, text) {
    connection.dataset.state = state;
    connection.querySelector(".connection-text").textContent = text;
    document.body.classList.toggle("stale", state === "lost");
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    source = new EventSource(STREAM_URL);
    source.onmessage = (message) => {
      let view;
      try { view = JSON.parse(message.data); } catch (error) { return; }
      lastMessageAt = Date.now();
      setConnection("live", "live");
      render(view);
    };
    source.onerror = () => {
      setConnection("lost", "connection lost — reconnecting");
      if (source.readyState === EventSource.CLOSED) reconnectTimer = setTimeout(connect, RECONNECT_DELAY_MS);
    };
  }

  function watchdog() {
    const silentMs = Date.now() - lastMessageAt;
    if (lastMessageAt && silentMs > STALE_AFTER_MS) setConnection("lost", `connection lost — no update for ${Math.round(silentMs / 1000)} s`);
    if (lastMessageAt && silentMs > RECONNECT_AFTER_MS) { lastMessageAt = Date.now() - STALE_AFTER_MS; connect(); }
  }

  function setSort(value) {
    sortBy = value;
    for (const button of document.querySelectorAll("[data-sort]")) button.classList.toggle("active", button.dataset.sort === value);
    const params = new URLSearchParams(location.search);
    params.set("sort", value);
    history.replaceState(null, "", `${location.pathname}?${params}`);
    if (lastView && !lastView.error) renderCommands(lastView.commands);
  }

  for (const button of document.querySelectorAll("[data-sort]")) button.addEventListener("click", () => setSort(button.dataset.sort));
  if (!["error", "volume", "name"].includes(sortBy)) sortBy = "error";
  setSort(sortBy);
  connect();
  setInterval(watchdog, 500);
})();
