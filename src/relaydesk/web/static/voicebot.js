// The Voice bot tab: KPI cards, Chart.js charts, the calls table and its detail dialog,
// syncs with a progress bar, archives and the ElevenLabs settings, all from /api/voicebot/*.
// Plain script, no build step; the words come from the page (#voicebot-strings).
(function () {
  "use strict";

  var root = document.getElementById("voicebot");
  if (!root) return;
  var T = JSON.parse(document.getElementById("voicebot-strings").textContent);
  var lang = document.body.dataset.lang || "en";
  var locale = (navigator.language || "").toLowerCase().indexOf(lang) === 0 ? navigator.language : lang;
  var canOperate = root.dataset.canOperate === "yes";
  var perPage = parseInt(root.dataset.perPage, 10) || 25;
  var state = { month: root.dataset.month, from: "", to: "", agent: "", outcome: "", page: 1 };
  var charts = {};
  var quiet = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var COLORS = { accent: "#3b4fd8", green: "#1f9d55", amber: "#d49b00", purple: "#6a4fd8", red: "#c0392b", grey: "#9aa1b1" };

  // ---- small helpers ----
  function $(selector, scope) { return (scope || document).querySelector(selector); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function format(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; } catch (e) { return ""; }
  }
  // Calls the JSON API with the panel's session; resolves to {ok, status, data}.
  function api(method, url, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return translated({ ok: response.ok, status: response.status, data: data });
      });
    });
  }
  // The API answers in English: its notes (detail, message, error) go through /said,
  // which returns them in the panel's language; on any trouble the English stays.
  var NOTE_KEYS = { detail: true, message: true, error: true };
  function translated(answer) {
    if (document.documentElement.lang === "en") return Promise.resolve(answer);
    var slots = [];
    (function walk(value, depth) {
      if (!value || typeof value !== "object" || depth > 3) return;
      Object.keys(value).forEach(function (key) {
        var item = value[key];
        if (NOTE_KEYS[key] && typeof item === "string" && item) slots.push([value, key]);
        else walk(item, depth + 1);
      });
    })(answer.data, 0);
    if (!slots.length) return Promise.resolve(answer);
    slots = slots.slice(0, 100);
    return fetch("/said", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), Accept: "application/json" },
      body: JSON.stringify({ texts: slots.map(function (slot) { return slot[0][slot[1]].slice(0, 4000); }) }),
    }).then(function (response) { return response.ok ? response.json() : null; }).then(function (body) {
      if (body && body.texts) slots.forEach(function (slot, i) { slot[0][slot[1]] = body.texts[i]; });
      return answer;
    }).catch(function () { return answer; });
  }
  function problem(answer) {
    var detail = answer && answer.data && answer.data.detail;
    if (typeof detail === "string") return detail;
    return detail ? JSON.stringify(detail) : "HTTP " + (answer ? answer.status : "?");
  }
  function notice(container, kind, text, lead) {
    container.innerHTML = "";
    var p = el("p", "notice notice-" + kind);
    p.setAttribute("role", kind === "error" ? "alert" : "status");
    if (lead) { p.append(el("strong", null, lead), " "); }
    p.append(text);
    container.appendChild(p);
    return p;
  }

  var numberFormats = {};
  function num(value, digits) {
    if (value === null || value === undefined || isNaN(value)) return "–";
    var key = digits || 0;
    numberFormats[key] = numberFormats[key] || new Intl.NumberFormat(locale, { maximumFractionDigits: key });
    return numberFormats[key].format(value);
  }
  var percentFormat = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
  function pct(value) { return value === null || value === undefined || isNaN(value) ? "–" : percentFormat.format(value / 100); }
  function duration(secs) {
    if (secs === null || secs === undefined || isNaN(secs)) return "–";
    var total = Math.round(secs);
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }
  var dateTimeFormat = new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "short" });
  function when(iso) {
    var value = iso ? new Date(iso) : null;
    return value && !isNaN(value) ? dateTimeFormat.format(value) : "–";
  }
  // Days of the KPIs are UTC dates: shown as such, never shifted to the viewer's zone.
  var dayFormat = new Intl.DateTimeFormat(locale, { day: "2-digit", month: "2-digit", timeZone: "UTC" });
  var longDayFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" });
  var monthFormat = new Intl.DateTimeFormat(locale, { month: "long", year: "numeric", timeZone: "UTC" });
  function utcDay(text) { return new Date(text + (text.length === 7 ? "-01" : "") + "T00:00:00Z"); }
  // The API's period is [from, to) in UTC: shown as its first and last day.
  function periodText(period) {
    var last = new Date(new Date(period.to).getTime() - 1);
    return format(T.period, { from: longDayFormat.format(new Date(period.from)), to: longDayFormat.format(last) });
  }
  function sizeText(bytes) {
    if (bytes < 1024) return num(bytes) + " B";
    if (bytes < 1024 * 1024) return num(bytes / 1024, 0) + " KB";
    return num(bytes / 1024 / 1024, 1) + " MB";
  }

  // ---- filters ----
  function filterParams() {
    var params = {};
    if (state.from && state.to) { params.from = state.from; params.to = state.to; }
    else params.month = state.month;
    if (state.agent) params.agent_id = state.agent;
    return params;
  }
  function query(params) {
    var search = new URLSearchParams();
    Object.keys(params).forEach(function (key) {
      if (params[key] !== "" && params[key] !== null && params[key] !== undefined) search.set(key, params[key]);
    });
    return search.toString();
  }
  function readFilters() {
    state.month = $("#vb-month").value || state.month;
    state.from = $("#vb-from").value;
    state.to = $("#vb-to").value;
    state.agent = $("#vb-agent").value;
    state.page = 1;
  }
  function updateExport() {
    var params = filterParams();
    if (state.outcome) params.outcome = state.outcome;
    var link = $("#vb-export");
    if (link) link.href = "/api/voicebot/export-csv?" + query(params);
  }
  // The range a sync asks for: the chosen dates, else the chosen month up to today.
  function syncRange() {
    if (state.from && state.to) return { from: state.from, to: state.to };
    var start = utcDay(state.month);
    var end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0));
    var today = new Date();
    if (end > today) end = today;
    return { from: state.month + "-01", to: end.toISOString().slice(0, 10) };
  }

  // ---- KPI cards ----
  function card(key) { return $(".vb-kpi[data-kpi='" + key + "']", root); }
  function setCard(key, value, sub) {
    var node = card(key);
    if (!node) return;
    $("[data-value]", node).textContent = value;
    $("[data-sub]", node).textContent = sub || "";
  }
  function setDefinitions(definitions) {
    root.querySelectorAll(".vb-kpi").forEach(function (node) {
      var texts = node.dataset.definitions.split(" ").map(function (key) { return definitions[key]; }).filter(Boolean);
      if (!texts.length) return;
      var text = texts.join(" ");
      $("[data-definition]", node).textContent = text;
      node.title = text;
    });
  }
  function fillCards(k) {
    var dir = k.direction || {};
    var inbound = dir.inbound || { total: 0, successful: 0, failed: 0 };
    var outbound = dir.outbound || { total: 0, successful: 0, failed: 0 };
    var d = k.duration || {};
    var cost = k.cost || {};
    var evaluation = k.evaluation || {};
    var criteria = Object.keys(evaluation);
    setCard("total", num(k.total), periodText(k.period));
    setCard("conversion", pct(k.conversion_rate), format(T.of_calls, { count: num(k.successful), total: num(k.total) }));
    setCard("outcomes", num(k.successful) + " / " + num(k.failed), format(T.outcomes_sub, { failed: num(k.failed), unknown: num(k.unknown) }) + " · " + format(T.in_out, {
      inbound_ok: num(inbound.successful), inbound_bad: num(inbound.failed),
      outbound_ok: num(outbound.successful), outbound_bad: num(outbound.failed),
    }));
    setCard("direction", num(inbound.total) + " / " + num(outbound.total), format(T.direction_sub, { inbound: num(inbound.total), outbound: num(outbound.total) }));
    if (criteria.length) {
      var rates = criteria.map(function (name) { return evaluation[name].pass_rate; }).filter(function (r) { return r !== null && r !== undefined; });
      var mean = rates.length ? rates.reduce(function (a, b) { return a + b; }, 0) / rates.length : null;
      setCard("evaluation", pct(mean), criteria.map(function (name) { return name + ": " + pct(evaluation[name].pass_rate); }).join(" · "));
    } else {
      setCard("evaluation", "–", T.no_criteria);
    }
    setCard("duration", duration(d.avg), format(T.duration_sub, { min: duration(d.min), max: duration(d.max), short: num(d.short), long: num(d.long) }));
    setCard("transfers", num((k.transfers || {}).count), pct((k.transfers || {}).rate));
    setCard("dropouts", num((k.dropouts || {}).count), pct((k.dropouts || {}).rate));
    setCard("messages", num(k.avg_agent_messages, 1), "");
    setCard("cost", num(cost.total, 2), format(T.cost_sub, { avg: num(cost.avg, 2) }));
    setCard("errors", num(k.errors), format(T.errors_sub, { rate: pct(k.error_rate) }));
    if (k.rating_count) setCard("rating", num(k.avg_rating, 1) + " / 5", format(T.rating_sub, { count: num(k.rating_count) }));
    else if (k.likes || k.dislikes) setCard("rating", "–", format(T.likes_sub, { likes: num(k.likes), dislikes: num(k.dislikes) }));
    else setCard("rating", "–", T.no_rating);
    var days = (k.daily || []).filter(function (day) { return day.total > 0; });
    if (days.length) {
      var busiest = days.reduce(function (a, b) { return b.total > a.total ? b : a; });
      setCard("daily", num(k.total / days.length, 1),
        format(T.daily_sub, { day: longDayFormat.format(utcDay(busiest.date)), count: num(busiest.total) }));
    } else {
      setCard("daily", "–", T.no_calls);
    }
    // The page's own (translated) sentences win over the API's English ones.
    setDefinitions(Object.assign({}, k.definitions || {}, T.definitions || {}));
  }

  // ---- charts ----
  function baseOptions(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: quiet ? false : { duration: 300 },
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom" } },
    };
    return Object.assign(options, extra || {});
  }
  function drawChart(key, emptyText, config) {
    var figure = $(".vb-chart[data-chart='" + key + "']", root);
    var canvas = $("canvas", figure);
    var empty = $("[data-empty]", figure);
    if (charts[key]) { charts[key].destroy(); delete charts[key]; }
    figure.dataset.state = emptyText ? "empty" : "drawn";
    $(".vb-canvas", figure).hidden = !!emptyText;
    empty.hidden = !emptyText;
    empty.textContent = emptyText || "";
    if (emptyText || !window.Chart) return;
    charts[key] = new window.Chart(canvas, config);
  }
  // The API lists only days with calls; the charts show every day of the period up to
  // today, so a quiet day is a visible zero rather than a missing tick.
  function everyDay(k) {
    var byDate = {};
    (k.daily || []).forEach(function (day) { byDate[day.date] = day; });
    var end = Math.min(new Date(k.period.to).getTime(), Date.now());
    var days = [];
    for (var t = new Date(k.period.from).getTime(); t < end && days.length < 400; t += 86400000) {
      var date = new Date(t).toISOString().slice(0, 10);
      days.push(byDate[date] || { date: date, total: 0, successful: 0, conversion_rate: null, avg_duration: null, cost: 0 });
    }
    (k.daily || []).forEach(function (day) { if (days.indexOf(byDate[day.date]) < 0) days.push(day); });
    return days.sort(function (a, b) { return a.date < b.date ? -1 : 1; });
  }
  function drawCharts(k) {
    var daily = everyDay(k);
    var labels = daily.map(function (day) { return dayFormat.format(utcDay(day.date)); });
    var noCalls = k.total ? "" : T.no_calls;
    drawChart("daily", noCalls, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { type: "bar", label: T.calls, data: daily.map(function (d) { return d.total; }), backgroundColor: "rgba(59,79,216,.55)", yAxisID: "y", order: 2 },
          { type: "line", label: T.conversion, data: daily.map(function (d) { return d.conversion_rate; }), borderColor: COLORS.green, backgroundColor: COLORS.green, yAxisID: "y1", tension: 0.25, order: 1, spanGaps: true },
        ],
      },
      options: baseOptions({
        scales: {
          y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: T.calls } },
          y1: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: T.conversion } },
        },
      }),
    });
    drawChart("duration", noCalls, {
      type: "line",
      data: { labels: labels, datasets: [{ label: T.avg_duration, data: daily.map(function (d) { return d.avg_duration; }), borderColor: COLORS.amber, backgroundColor: COLORS.amber, tension: 0.25, spanGaps: true }] },
      options: baseOptions({ scales: { y: { beginAtZero: true } } }),
    });
    drawChart("cost", noCalls, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: T.cost, data: daily.map(function (d) { return d.cost; }), backgroundColor: "rgba(106,79,216,.6)" }] },
      options: baseOptions({ scales: { y: { beginAtZero: true } } }),
    });
    var dir = k.direction || {};
    var inbound = (dir.inbound || {}).total || 0, outbound = (dir.outbound || {}).total || 0;
    var other = Math.max(0, (k.total || 0) - inbound - outbound);
    var slices = [[T.inbound, inbound, COLORS.green], [T.outbound, outbound, COLORS.accent], [T.unknown_direction, other, COLORS.grey]]
      .filter(function (slice) { return slice[1] > 0; });
    drawChart("direction", k.total ? (slices.length ? "" : T.no_direction) : T.no_calls, {
      type: "doughnut",
      data: {
        labels: slices.map(function (s) { return s[0]; }),
        datasets: [{ data: slices.map(function (s) { return s[1]; }), backgroundColor: slices.map(function (s) { return s[2]; }) }],
      },
      options: baseOptions({ interaction: { mode: "nearest", intersect: true } }),
    });
    var evaluation = k.evaluation || {};
    var criteria = Object.keys(evaluation);
    drawChart("evaluation", k.total ? (criteria.length ? "" : T.no_criteria) : T.no_calls, {
      type: "bar",
      data: { labels: criteria, datasets: [{ label: T.pass_rate, data: criteria.map(function (c) { return evaluation[c].pass_rate; }), backgroundColor: "rgba(31,157,85,.65)" }] },
      options: baseOptions({ indexAxis: "y", scales: { x: { min: 0, max: 100 } } }),
    });
  }

  function loadKpis() {
    var box = $("#vb-kpis");
    box.setAttribute("aria-busy", "true");
    return api("GET", "/api/voicebot/kpis?" + query(filterParams())).then(function (answer) {
      box.setAttribute("aria-busy", "false");
      if (!answer.ok) { notice($("#vb-period"), "error", problem(answer), T.load_failed); return; }
      var k = answer.data;
      $("#vb-period").textContent = periodText(k.period);
      fillCards(k);
      drawCharts(k);
      box.dataset.total = k.total;
    });
  }

  // ---- the calls table ----
  var OUTCOME = { success: T.outcome_success, failure: T.outcome_failure, unknown: T.outcome_unknown };
  function outcomeBadge(value) {
    var key = OUTCOME[value] ? value : "unknown";
    return el("span", "status vb-outcome-" + key, OUTCOME[key]);
  }
  function directionBadge(value) {
    if (value === "inbound") return el("span", "dir dir-in", T.inbound);
    if (value === "outbound") return el("span", "dir dir-out", T.outbound);
    return el("span", "muted", "–");
  }
  function ratingText(item) {
    if (item.rating !== null && item.rating !== undefined) return num(item.rating, 1) + " ★";
    if (item.likes || item.dislikes) return "👍 " + num(item.likes) + " · 👎 " + num(item.dislikes);
    return "–";
  }
  function numberCell(number, chatUrl) {
    if (!number) return el("span", "muted", "–");
    if (!chatUrl) return el("span", null, number);
    var link = el("a", null, number);
    link.href = chatUrl;
    link.title = T.open_chat;
    return link;
  }
  function callRow(item) {
    var row = el("tr");
    row.dataset.conversation = item.conversation_id;
    var open = el("button", "vb-open", when(item.start_time));
    open.type = "button";
    open.setAttribute("aria-label", format(T.open_call, { when: when(item.start_time) }));
    var cells = [
      open,
      numberCell(item.customer_number, item.chat_url),
      directionBadge(item.direction),
      outcomeBadge(item.call_successful),
      el("span", null, ratingText(item)),
      el("span", null, duration(item.duration_secs)),
    ];
    cells.forEach(function (content, index) {
      var td = el("td", index === 1 ? "number" : null);
      td.appendChild(content);
      if (index === 3) {
        if (item.transferred) td.append(" ", el("span", "vb-flag", T.transferred));
        if (item.dropout) td.append(" ", el("span", "vb-flag", T.dropout));
        if (item.has_error) td.append(" ", el("span", "vb-flag vb-flag-bad", T.error));
      }
      row.appendChild(td);
    });
    var summary = el("td", "preview");
    if (item.title) summary.appendChild(el("strong", null, item.title));
    if (item.summary) summary.appendChild(el("span", "vb-summary", item.summary));
    row.appendChild(summary);
    return row;
  }
  function loadCalls() {
    var body = $("#vb-calls");
    var params = filterParams();
    if (state.outcome) params.outcome = state.outcome;
    params.page = state.page;
    params.per_page = perPage;
    body.setAttribute("aria-busy", "true");
    return api("GET", "/api/voicebot/conversations?" + query(params)).then(function (answer) {
      body.setAttribute("aria-busy", "false");
      body.innerHTML = "";
      if (!answer.ok) {
        var failed = el("td", "empty", T.load_failed + " " + problem(answer));
        failed.colSpan = 7;
        body.appendChild(el("tr")).appendChild(failed);
        return;
      }
      var page = answer.data;
      if (!page.items.length) {
        var none = el("td", "empty", T.no_calls);
        none.colSpan = 7;
        body.appendChild(el("tr")).appendChild(none);
      }
      page.items.forEach(function (item) { body.appendChild(callRow(item)); });
      var pages = Math.max(1, Math.ceil(page.total / page.per_page));
      $("#vb-page-info").textContent = format(T.page, { page: page.page, pages: pages, total: num(page.total) });
      $("#vb-prev").disabled = page.page <= 1;
      $("#vb-next").disabled = page.page >= pages;
      body.dataset.total = page.total;
    });
  }

  // ---- one call: transcript, analysis, data collection ----
  function fact(list, label, value) {
    if (value === null || value === undefined || value === "") return;
    list.appendChild(el("dt", null, label));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
    list.appendChild(dd);
  }
  function tableRows(body, rows, cells) {
    body.innerHTML = "";
    if (!rows.length) {
      var none = el("td", "muted", T.no_results);
      none.colSpan = 3;
      body.appendChild(el("tr")).appendChild(none);
      return;
    }
    rows.forEach(function (row) {
      var tr = el("tr");
      cells(row).forEach(function (value) {
        var td = el("td");
        if (value instanceof Node) td.appendChild(value); else td.textContent = value === null || value === undefined ? "–" : value;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function fillDetail(item) {
    var dialog = $("#vb-detail");
    $("#vb-detail-title").textContent = item.title || item.customer_number || item.conversation_id;
    var facts = $("[data-facts]", dialog);
    facts.innerHTML = "";
    fact(facts, T.fact_time, when(item.start_time));
    fact(facts, T.fact_customer, item.customer_number ? numberCell(item.customer_number, item.chat_url) : null);
    fact(facts, T.fact_agent_number, item.agent_number);
    fact(facts, T.fact_agent, item.agent_name || item.agent_id);
    fact(facts, T.fact_direction, directionBadge(item.direction));
    fact(facts, T.fact_outcome, outcomeBadge(item.call_successful));
    fact(facts, T.fact_duration, duration(item.duration_secs));
    fact(facts, T.fact_cost, item.cost === null || item.cost === undefined ? null : num(item.cost, 2));
    fact(facts, T.fact_rating, ratingText(item));
    fact(facts, T.fact_id, item.conversation_id);
    $("[data-summary]", dialog).textContent = item.summary || "";
    var list = $("[data-transcript]", dialog);
    list.innerHTML = "";
    var turns = (item.transcript || []).filter(function (turn) { return turn.message; });
    if (!turns.length) list.appendChild(el("li", "muted", T.no_transcript));
    turns.forEach(function (turn) {
      var agent = turn.role === "agent";
      var bubble = el("li", "bubble " + (agent ? "out" : "in"));
      bubble.dataset.role = agent ? "agent" : "user";
      var meta = el("div", "bubble-meta");
      meta.append(el("span", "source", agent ? T.agent : T.user));
      if (turn.time_in_call_secs !== null && turn.time_in_call_secs !== undefined) meta.append(" · " + duration(turn.time_in_call_secs));
      bubble.append(meta, el("p", "bubble-body", turn.message));
      list.appendChild(bubble);
    });
    tableRows($("[data-evaluation]", dialog), item.evaluation || [], function (r) { return [r.criterion, outcomeBadge(r.result), r.rationale]; });
    tableRows($("[data-collection]", dialog), item.data_collection || [], function (r) {
      return [r.id, typeof r.value === "object" && r.value !== null ? JSON.stringify(r.value) : r.value, r.rationale];
    });
    $("[data-termination]", dialog).textContent = item.termination_reason || "–";
  }
  function openDetail(conversationId) {
    var dialog = $("#vb-detail");
    var body = $("#vb-detail-body");
    dialog.dataset.conversation = conversationId;
    body.setAttribute("aria-busy", "true");
    $("#vb-detail-title").textContent = T.loading;
    $("[data-transcript]", dialog).innerHTML = "";
    if (!dialog.open) dialog.showModal();
    api("GET", "/api/voicebot/conversations/" + encodeURIComponent(conversationId)).then(function (answer) {
      body.setAttribute("aria-busy", "false");
      if (dialog.dataset.conversation !== conversationId) return;
      if (!answer.ok) { $("#vb-detail-title").textContent = T.load_failed + " " + problem(answer); return; }
      fillDetail(answer.data);
    });
  }

  // ---- months, sync logs, archives ----
  function loadMonths() {
    return api("GET", "/api/voicebot/months").then(function (answer) {
      if (!answer.ok) return;
      var select = $("#vb-month");
      var months = answer.data.slice();
      var known = months.map(function (m) { return m.month; });
      if (known.indexOf(root.dataset.month) < 0) months.push({ month: root.dataset.month, conversations: 0 });
      if (known.indexOf(state.month) < 0 && state.month !== root.dataset.month) months.push({ month: state.month, conversations: 0 });
      months.sort(function (a, b) { return a.month < b.month ? 1 : -1; });
      select.innerHTML = "";
      months.forEach(function (m) {
        var option = el("option", null, monthFormat.format(utcDay(m.month)) + " (" + num(m.conversations) + ")");
        option.value = m.month;
        option.selected = m.month === state.month;
        select.appendChild(option);
      });
    });
  }
  // The agent filter: the configured agents, and any other agent that has calls.
  function loadAgents() {
    return api("GET", "/api/voicebot/agents").then(function (answer) {
      if (!answer.ok) return;
      var select = $("#vb-agent");
      answer.data.forEach(function (agent) {
        var option = select.querySelector("option[value='" + CSS.escape(agent.agent_id) + "']");
        if (!option) {
          option = el("option");
          option.value = agent.agent_id;
          select.appendChild(option);
        }
        option.textContent = agent.agent_name ? agent.agent_name + " (" + agent.agent_id + ")" : agent.agent_id;
      });
    });
  }
  function loadSyncLogs() {
    return api("GET", "/api/voicebot/sync-logs").then(function (answer) {
      var body = $("#vb-sync-logs");
      if (!answer.ok) return;
      body.innerHTML = "";
      var logs = answer.data.slice(0, 10);
      if (!logs.length) {
        var none = el("td", "muted", T.no_syncs);
        none.colSpan = 9;
        body.appendChild(el("tr")).appendChild(none);
      }
      logs.forEach(function (log) {
        var tr = el("tr");
        tr.dataset.status = log.status;
        var range = (log.range_from ? log.range_from.slice(0, 10) : "…") + " – " + (log.range_to ? log.range_to.slice(0, 10) : "…");
        [when(log.started_at), T["trigger_" + log.trigger] || log.trigger, T["status_" + log.status] || log.status, range,
          num(log.listed), num(log.fetched), num(log.created), num(log.updated), log.error || ""].forEach(function (value) {
          tr.appendChild(el("td", null, value));
        });
        body.appendChild(tr);
      });
    });
  }
  function loadArchives() {
    return api("GET", "/api/voicebot/archives").then(function (answer) {
      var body = $("#vb-archives");
      if (!answer.ok) return;
      body.innerHTML = "";
      if (!answer.data.length) {
        var none = el("td", "muted", T.no_archives);
        none.colSpan = 6;
        body.appendChild(el("tr")).appendChild(none);
      }
      answer.data.forEach(function (archive) {
        var tr = el("tr");
        tr.dataset.month = archive.month;
        var link = el("span", "muted", archive.filename);
        if (canOperate) {
          link = el("a", null, T.download);
          link.href = "/api/voicebot/archives/" + encodeURIComponent(archive.id) + "/download";
          link.setAttribute("download", archive.filename);
        }
        [monthFormat.format(utcDay(archive.month)), num(archive.rows), sizeText(archive.size), when(archive.created_at),
          T["trigger_" + archive.trigger] || archive.trigger, link].forEach(function (value) {
          var td = el("td");
          if (value instanceof Node) td.appendChild(value); else td.textContent = value;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    });
  }

  // ---- jobs: a sync, a re-fetch of details, an archive ----
  var polling = null;
  function jobView(job, title) {
    var box = $("#vb-job");
    box.innerHTML = "";
    var article = el("article", "vb-job");
    article.dataset.job = job.id;
    article.dataset.status = job.status;
    article.appendChild(el("h3", null, title));
    if (job.status === "queued" || job.status === "running") {
      var bar = el("progress");
      if (job.total) { bar.max = job.total; bar.value = job.done; }
      bar.setAttribute("aria-label", title);
      article.appendChild(bar);
      var line = (job.total ? num(job.done) + "/" + num(job.total) + " · " : "") + (job.message || T.waiting);
      article.appendChild(el("p", "muted", line));
    } else if (job.status === "done") {
      var r = job.result || {};
      var text = r.listed !== undefined || r.fetched !== undefined
        ? format(T.sync_done, { listed: num(r.listed || 0), fetched: num(r.fetched || 0), created: num(r.created || 0), updated: num(r.updated || 0) })
        : T.job_done;
      var done = el("p", "notice notice-success", text);
      done.setAttribute("role", "status");
      article.appendChild(done);
    } else {
      var failed = el("p", "notice notice-error");
      failed.setAttribute("role", "alert");
      failed.append(el("strong", null, T.job_failed), " ", job.error || job.message || job.status);
      article.appendChild(failed);
    }
    box.appendChild(article);
  }
  function setBusy(busy) {
    ["#vb-fetch", "#vb-refetch", "#vb-archive"].forEach(function (selector) {
      var button = $(selector);
      if (!button) return;
      button.setAttribute("aria-busy", busy ? "true" : "false");
      button.disabled = busy || (selector !== "#vb-archive" && root.dataset.ready !== "yes");
    });
  }
  function follow(statusUrl, title, finished) {
    if (polling) clearTimeout(polling);
    setBusy(true);
    var tick = function () {
      api("GET", statusUrl).then(function (answer) {
        if (!answer.ok) { setBusy(false); notice($("#vb-job"), "error", problem(answer), T.job_failed); return; }
        jobView(answer.data, title);
        if (answer.data.status === "queued" || answer.data.status === "running") { polling = setTimeout(tick, 1000); return; }
        polling = null;
        setBusy(false);
        finished(answer.data);
      });
    };
    tick();
  }
  function refreshEverything() {
    loadMonths();
    loadAgents();
    loadKpis();
    loadCalls();
    loadSyncLogs();
    loadArchives();
  }
  function startJob(url, body, title) {
    setBusy(true);
    api("POST", url, body).then(function (answer) {
      if (!answer.ok) { setBusy(false); notice($("#vb-job"), "error", problem(answer)); return; }
      jobView(answer.data.job || { id: "", status: "queued" }, title);
      follow(answer.data.status_url || "/api/jobs/" + answer.data.job.id, title, refreshEverything);
    });
  }

  // ---- settings (administrators) ----
  function showKeyState(view) {
    var line = $("[data-key-state]");
    if (!line) return;
    var source = view ? view.api_key_source : line.dataset.source;
    var masked = view ? view.api_key_masked : line.dataset.masked;
    var unreadable = view ? view.api_key_unreadable : line.dataset.unreadable === "yes";
    if (unreadable) line.textContent = T.key_unreadable;
    else if (source === "env") line.textContent = (masked || "") + " · " + T.key_source_env;
    else if (source === "panel") line.textContent = (masked || "") + " · " + T.key_source_panel;
    else line.textContent = T.key_missing;
    if (view) $("#vb-api-key").placeholder = masked || "";
  }
  function applySettings(view) {
    showKeyState(view);
    var ready = !!(view.api_key_set && view.agent_ids.length);
    root.dataset.ready = ready ? "yes" : "no";
    var note = $("#vb-not-ready");
    if (note) note.hidden = ready;
    setBusy(false);
    var select = $("#vb-agent");
    var chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    view.agent_ids.forEach(function (agent) {
      var option = el("option", null, agent);
      option.value = agent;
      option.selected = agent === chosen;
      select.appendChild(option);
    });
    $("#vb-agent-ids").value = view.agent_ids.join("\n");
    loadAgents();
  }
  function saveSettings(event) {
    event.preventDefault();
    var body = { agent_ids: $("#vb-agent-ids").value };
    var key = $("#vb-api-key").value.trim();
    if (key) body.api_key = key;
    else if ($("#vb-clear-key").checked) body.api_key = null;
    var result = $("#vb-settings-result");
    $("#vb-save").setAttribute("aria-busy", "true");
    api("POST", "/api/voicebot/settings", body).then(function (answer) {
      $("#vb-save").setAttribute("aria-busy", "false");
      if (!answer.ok) { notice(result, "error", problem(answer)); return; }
      $("#vb-api-key").value = "";
      $("#vb-clear-key").checked = false;
      applySettings(answer.data);
      notice(result, "success", T.saved);
    });
  }
  function testConnection() {
    var result = $("#vb-settings-result");
    var list = $("#vb-test-result");
    var button = $("#vb-test");
    list.innerHTML = "";
    notice(result, "info", T.testing);
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    // The form's values are tried as they are, saved or not (a blank key: the saved one).
    var body = { agent_ids: $("#vb-agent-ids").value };
    var key = $("#vb-api-key").value.trim();
    if (key) body.api_key = key;
    api("POST", "/api/voicebot/test-connection", body).then(function (answer) {
      button.setAttribute("aria-busy", "false");
      button.disabled = false;
      if (!answer.ok) { notice(result, "error", problem(answer), T.test_failed); return; }
      var data = answer.data;
      if (data.ok) notice(result, "success", data.detail || "", T.test_ok);
      else notice(result, "error", data.detail || "", T.test_failed);
      (data.agents || []).forEach(function (agent) {
        var item = el("li", agent.ok ? "vb-ok" : "vb-bad");
        item.dataset.agent = agent.agent_id;
        item.append(el("code", null, agent.agent_id), " ", el("strong", null, agent.ok ? T.ok : T.not_ok));
        if (agent.detail) item.append(" · " + agent.detail);
        list.appendChild(item);
      });
    });
  }

  // ---- wiring ----
  // Any filter change redraws the cards, charts and table; a month or "whole month"
  // drops the date range first.
  function applyFilters(clearRange) {
    if (clearRange) {
      $("#vb-from").value = "";
      $("#vb-to").value = "";
    }
    readFilters();
    updateExport();
    loadKpis();
    loadCalls();
  }
  $("#vb-filters").addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilters(false);
  });
  $("#vb-month").addEventListener("change", function () { applyFilters(true); });
  $("#vb-agent").addEventListener("change", function () { applyFilters(false); });
  $("#vb-clear-range").addEventListener("click", function () { applyFilters(true); });
  $("#vb-outcome").addEventListener("change", function (event) {
    state.outcome = event.target.value;
    state.page = 1;
    updateExport();
    loadCalls();
  });
  $("#vb-prev").addEventListener("click", function () { if (state.page > 1) { state.page -= 1; loadCalls(); } });
  $("#vb-next").addEventListener("click", function () { state.page += 1; loadCalls(); });
  $("#vb-calls").addEventListener("click", function (event) {
    if (event.target.closest("a")) return; // the number's link goes to the messages
    var row = event.target.closest("tr[data-conversation]");
    if (row) openDetail(row.dataset.conversation);
  });
  var dialog = $("#vb-detail");
  dialog.addEventListener("click", function (event) {
    if (event.target === dialog || event.target.closest("[data-close-detail]")) dialog.close();
  });
  if ($("#vb-fetch")) {
    $("#vb-fetch").addEventListener("click", function () { startJob("/api/voicebot/sync", syncRange(), T.sync_running); });
    $("#vb-refetch").addEventListener("click", function () { startJob("/api/voicebot/refetch-details", undefined, T.refetch_running); });
  }
  if ($("#vb-archive")) {
    $("#vb-archive").addEventListener("click", function () {
      var result = $("#vb-archive-result");
      var month = state.month;
      notice(result, "info", T.archiving);
      api("POST", "/api/voicebot/archive?" + query({ month: month })).then(function (answer) {
        if (!answer.ok) { notice(result, "error", problem(answer)); return; }
        var done = function () { notice(result, "success", format(T.archived, { month: monthFormat.format(utcDay(month)) })); loadArchives(); };
        if (answer.data && answer.data.status_url) follow(answer.data.status_url, T.archiving, done);
        else done();
      });
    });
  }
  if ($("#vb-settings")) {
    $("#vb-settings").addEventListener("submit", saveSettings);
    $("#vb-test").addEventListener("click", testConnection);
    showKeyState(null);
  }

  // A sync started elsewhere (another tab, the 02:00 run) shows its progress here too.
  function resumeJobs() {
    [["voicebot.sync", T.sync_running], ["voicebot.refetch", T.refetch_running]].forEach(function (kind) {
      api("GET", "/api/jobs?" + query({ kind: kind[0], limit: 1 })).then(function (answer) {
        var job = answer.ok && answer.data[0];
        if (job && (job.status === "queued" || job.status === "running") && !polling) {
          follow("/api/jobs/" + job.id, kind[1], refreshEverything);
        }
      });
    });
  }

  updateExport();
  refreshEverything();
  resumeJobs();
  window.relaydeskVoicebot = { charts: charts, state: state };
})();
