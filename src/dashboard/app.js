// The redactor dashboard page. Plain JavaScript, no build. Every element is built with
// textContent: message bytes are untrusted and never become HTML.

const token = document.querySelector('meta[name="redactor-token"]')?.getAttribute("content") ?? "";
const PRIORITIES = { 1: "LOW", 2: "NORMAL", 3: "HIGH", 4: "CRITICAL" };
const REFRESH_MS = 2000;
const TAIL_MAX = 200;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes, never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "-";
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(a)} ms`;
  if (a < 60_000) return `${(a / 1000).toFixed(1)} s`;
  if (a < 3_600_000) return `${Math.floor(a / 60_000)} min ${Math.round((a % 60_000) / 1000)} s`;
  if (a < 86_400_000) return `${Math.floor(a / 3_600_000)} h ${Math.round((a % 3_600_000) / 60_000)} min`;
  return `${(a / 86_400_000).toFixed(1)} d`;
}

function clock(ms) {
  return ms === null || ms === undefined
    ? "-"
    : new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function priorityName(p) {
  return PRIORITIES[p] ?? (p === null || p === undefined ? "-" : String(p));
}

function preview(value, max = 80) {
  if (value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

async function api(path, options = {}) {
  const init = { headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-Redactor-Token"] = token;
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

function replaceRows(table, rows, empty) {
  const body = table.tBodies[0];
  if (rows.length === 0) body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 20 }, empty)));
  else body.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Navigation: #app=<id>&msg=<id>&to=<recipient>

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { app: params.get("app"), msg: params.get("msg"), to: params.get("to") };
}

function go(next) {
  const params = new URLSearchParams();
  const merged = { ...route(), ...next };
  for (const [k, v] of Object.entries(merged)) if (v) params.set(k, v);
  location.hash = params.toString();
}

function appLink(app) {
  return el("a", { href: `#${new URLSearchParams({ app })}`, class: "app-link", dataset: { app } }, app);
}

function messageLink(id, recipient) {
  if (!id) return "-";
  const params = new URLSearchParams(route().app ? { app: route().app } : {});
  params.set("msg", id);
  if (recipient) params.set("to", recipient);
  return el("a", { href: `#${params}`, class: "msg-link", dataset: { id } }, id);
}

// ---------------------------------------------------------------------------------------------
// Apps

async function loadApps() {
  const data = await api("/api/apps");
  $("system").textContent = `as ${data.system.appId}${data.system.hashTag ? " (cluster layout)" : ""}`;
  $("updated").textContent = `updated ${new Date(data.now).toLocaleTimeString()}`;
  const selected = route().app;
  replaceRows(
    $("apps"),
    data.apps.map((a) =>
      el(
        "tr",
        { class: a.app === selected ? "selected" : undefined, dataset: { app: a.app } },
        el("td", {}, appLink(a.app)),
        el("td", {}, el("span", { class: `badge status-${a.status}` }, a.status)),
        el("td", { class: "host" }, a.hosts.length ? a.hosts.join(", ") : "-"),
        el("td", { class: "num", dataset: { col: "inbox" } }, a.inbox),
        el("td", { class: "num", dataset: { col: "inFlight" } }, a.inFlight),
        el("td", { class: a.dead > 0 ? "num alert" : "num", dataset: { col: "dead" } }, a.dead),
        el("td", { class: "num", dataset: { col: "scheduled" } }, a.scheduled),
        el(
          "td",
          { class: "num", dataset: { col: "oldest" } },
          a.oldestWaitingMs === null ? "-" : duration(a.oldestWaitingMs),
        ),
      ),
    ),
    "no apps: no status:* hashes and no queue:* keys",
  );
}

// ---------------------------------------------------------------------------------------------
// One app

const selectedDead = new Set();

async function loadApp(app) {
  const section = $("app-section");
  if (!app) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  let data;
  try {
    data = await api(`/api/apps/${encodeURIComponent(app)}`);
  } catch (err) {
    $("app-name").textContent = app;
    $("app-meta").textContent = err.message;
    for (const id of ["inbox", "inflight", "dead", "scheduled"]) replaceRows($(id), [], "-");
    return;
  }
  $("app-name").textContent = data.app;
  const status = $("app-status");
  status.textContent = data.status;
  status.className = `badge status-${data.status}`;
  $("app-meta").textContent =
    `hosted by ${data.hosts}; ` +
    (data.ordering === "canonical"
      ? "redactor inbox: strict priority, oldest first"
      : "peer inbox: highest score first (newest first within a priority)");
  const now = data.now;
  $("inbox-total").textContent = String(data.inbox.total);
  replaceRows(
    $("inbox"),
    data.inbox.entries.map((e) =>
      el(
        "tr",
        { dataset: { id: e.id ?? "" } },
        el("td", { class: "num" }, e.position ?? "-"),
        el("td", {}, messageLink(e.id, data.app)),
        el("td", {}, e.type ?? "-"),
        el("td", {}, e.sender ?? "-"),
        el("td", {}, el("span", { class: `prio prio-${e.priority}` }, priorityName(e.priority))),
        el("td", {}, e.ageMs === null ? "-" : duration(e.ageMs)),
        el("td", { class: "payload" }, e.problem ? `refused on claim: ${e.problem}` : preview(e.payload)),
      ),
    ),
    "empty",
  );
  $("inflight-total").textContent = String(data.inFlight.total);
  replaceRows(
    $("inflight"),
    data.inFlight.entries.map((e) =>
      el(
        "tr",
        {},
        el("td", {}, messageLink(e.id, data.app)),
        el("td", {}, e.type ?? "-"),
        el("td", {}, e.state),
        el("td", { class: "num" }, e.attempts ?? "-"),
        el("td", {}, e.untilInMs < 0 ? `${duration(-e.untilInMs)} ago` : `in ${duration(e.untilInMs)}`),
        el("td", { class: "host" }, e.lease ?? "-"),
      ),
    ),
    "none",
  );
  $("dead-total").textContent = String(data.dead.total);
  const ids = new Set(data.dead.entries.map((e) => e.id).filter(Boolean));
  for (const id of [...selectedDead]) if (!ids.has(id)) selectedDead.delete(id);
  replaceRows(
    $("dead"),
    data.dead.entries.map((e) => {
      const box = el("input", {
        type: "checkbox",
        class: "dead-select",
        "aria-label": `select ${e.id ?? "dead letter"}`,
        disabled: !e.id,
        checked: e.id !== null && selectedDead.has(e.id),
      });
      box.addEventListener("change", () => {
        if (box.checked) selectedDead.add(e.id);
        else selectedDead.delete(e.id);
        updateDeadButtons();
      });
      return el(
        "tr",
        { dataset: { id: e.id ?? "" } },
        el("td", {}, box),
        el("td", {}, messageLink(e.id, data.app)),
        el("td", {}, e.type ?? "-"),
        el("td", {}, e.sender ?? "-"),
        el("td", {}, e.reason),
        el("td", { class: "error" }, e.error ?? "-"),
        el("td", { class: "num" }, e.attempts ?? "-"),
        el("td", {}, `${duration(now - e.at)} ago`),
      );
    }),
    "none",
  );
  updateDeadButtons();
  $("scheduled-total").textContent = String(data.scheduled.total);
  replaceRows(
    $("scheduled"),
    data.scheduled.entries.map((m) =>
      el(
        "tr",
        {},
        el("td", {}, messageLink(m.id, data.app)),
        el("td", {}, m.type ?? "-"),
        el("td", {}, m.sender ?? "-"),
        el("td", {}, m.dueInMs <= 0 ? "due now" : `in ${duration(m.dueInMs)} (${clock(m.due)})`),
      ),
    ),
    "none",
  );
}

function updateDeadButtons() {
  const n = selectedDead.size;
  $("dead-retry").disabled = n === 0;
  $("dead-purge").disabled = n === 0;
  $("dead-retry").textContent = n ? `Retry ${n} selected` : "Retry selected";
  $("dead-purge").textContent = n ? `Purge ${n} selected` : "Purge selected";
}

/** Asks the person to confirm in the page's own dialog; resolves true on Confirm. */
function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-ok").removeEventListener("click", ok);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      dialog.close();
      resolve(answer);
    };
    const ok = () => done(true);
    const cancel = () => done(false);
    $("confirm-ok").addEventListener("click", ok);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
  });
}

async function deadAction(action) {
  const app = route().app;
  const ids = [...selectedDead];
  if (!app || ids.length === 0) return;
  const verb = action === "retry" ? "Put back in the inbox of" : "Delete for good from the dead letters of";
  if (
    !(await confirmAction(
      `${verb} ${app}: ${ids.length} message${ids.length === 1 ? "" : "s"}?\n${ids.join("\n")}`,
    ))
  )
    return;
  try {
    const result = await api(`/api/apps/${encodeURIComponent(app)}/dead/${action}`, { body: { ids } });
    selectedDead.clear();
    showResult(
      action === "retry"
        ? `retried ${result.retried.length}${result.skipped.length ? `, skipped ${result.skipped.map((s) => `${s.id}: ${s.reason}`).join("; ")}` : ""}; ${result.remaining} dead letters left`
        : `purged ${result.purged}; ${result.remaining} dead letters left`,
    );
  } catch (err) {
    showResult(`${action} failed: ${err.message}`);
  }
  await refresh();
}

// ---------------------------------------------------------------------------------------------
// One message

async function loadMessage(id, to) {
  const section = $("message-section");
  if (!id) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("message-id").textContent = id;
  let m;
  try {
    m = await api(`/api/messages/${encodeURIComponent(id)}${to ? `?app=${encodeURIComponent(to)}` : ""}`);
  } catch (err) {
    $("message-place").textContent = "unknown";
    $("timeline").replaceChildren(el("li", {}, err.message));
    return;
  }
  const place = $("message-place");
  place.textContent = m.place;
  place.className = `badge place-${m.place}`;
  $("timeline").replaceChildren(
    ...m.timeline.map((s) =>
      el(
        "li",
        { class: s.current ? `step current step-${s.state}` : `step step-${s.state}` },
        el("span", { class: "state" }, s.state),
        el("span", { class: "when" }, s.at === null ? "" : clock(s.at)),
        el("span", { class: "detail" }, s.detail),
      ),
    ),
  );
  $("message-hash").textContent = m.hashKey;
  const fields = Object.entries(m.fields).filter(([k]) => k !== "member");
  $("message-fields").tBodies[0].replaceChildren(
    ...(fields.length
      ? fields.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))
      : [el("tr", {}, el("td", {}, "no hash: it expired or was never written"))]),
    el(
      "tr",
      {},
      el("th", {}, "expires"),
      el("td", {}, m.ttlSeconds === null ? "-" : `in ${duration(m.ttlSeconds * 1000)}`),
    ),
  );
  $("message-locations").replaceChildren(
    ...(m.locations.length
      ? m.locations.map((l) =>
          el(
            "li",
            {},
            `${l.place} of ${l.app}`,
            l.position === undefined ? "" : `, position ${l.position} in run order`,
          ),
        )
      : [el("li", {}, "gone: in no queue any more")]),
  );
  $("message-payload").textContent = m.message
    ? JSON.stringify(
        {
          type: m.message.type,
          sender: m.message.sender,
          recipient: m.message.recipient,
          priority: priorityName(m.message.priority),
          reply_to: m.message.replyTo,
          payload: m.message.payload,
          ...(m.message.problem ? { problem: m.message.problem } : {}),
        },
        null,
        2,
      )
    : "(no copy of the message is left)";
  const reply = $("message-reply");
  if (m.reply) {
    reply.replaceChildren(
      el(
        "p",
        {},
        `${m.reply.kind === "error" ? "error reply" : "reply"} `,
        messageLink(m.reply.id, m.reply.fields.recipient),
        ` (${m.reply.status ?? "?"})`,
      ),
      el(
        "pre",
        {},
        m.reply.message
          ? JSON.stringify(m.reply.message.payload, null, 2)
          : "(consumed: only its hash is left)",
      ),
    );
  } else reply.replaceChildren(el("p", { class: "muted" }, "none"));
  const dead = $("message-dead");
  if (m.dead.length) {
    dead.replaceChildren(
      ...m.dead.map((d) =>
        el("p", {}, `${d.reason}: ${d.error ?? "-"} (attempts ${d.attempts ?? "-"}, ${clock(d.atMs)})`),
      ),
    );
  } else dead.replaceChildren(el("p", { class: "muted" }, "none"));
}

// ---------------------------------------------------------------------------------------------
// Live tail

let source;

function startTail() {
  source?.close();
  const types = $("tail-type").value.trim();
  source = new EventSource(`/api/tail${types ? `?type=${encodeURIComponent(types)}` : ""}`);
  source.addEventListener("ready", (ev) => {
    const info = JSON.parse(ev.data);
    $("tail-state").textContent = `live${info.types.length ? `, only ${info.types.join(", ")}` : ""}`;
  });
  source.addEventListener("note", (ev) => {
    addTail(el("li", { class: "note" }, JSON.parse(ev.data).text));
  });
  source.addEventListener("message", (ev) => {
    const e = JSON.parse(ev.data);
    const route = e.event === "broadcast" ? `${e.sender} → *` : `${e.sender ?? "?"} → ${e.recipient ?? "?"}`;
    const what = e.event === "status" ? e.status : e.event;
    addTail(
      el(
        "li",
        { class: `tail-${what}`, dataset: { id: e.id, type: e.type ?? "" } },
        el("span", { class: "when" }, new Date(e.at).toLocaleTimeString()),
        el("span", { class: "what" }, what),
        el("span", { class: "route" }, route),
        el("span", { class: "type" }, e.type ?? "?"),
        messageLink(e.id, e.recipient),
        e.error ? el("span", { class: "error" }, e.error) : "",
        e.payload !== undefined ? el("span", { class: "payload" }, preview(e.payload, 100)) : "",
      ),
    );
  });
  source.onerror = () => {
    $("tail-state").textContent = "reconnecting…";
  };
}

function addTail(item) {
  const list = $("tail");
  list.prepend(item);
  while (list.children.length > TAIL_MAX) list.lastElementChild?.remove();
}

// ---------------------------------------------------------------------------------------------
// Send and ask

function showResult(text) {
  $("send-result").textContent = text;
}

async function submit(kind) {
  let payload;
  try {
    payload = JSON.parse($("send-payload").value || "{}");
  } catch (err) {
    showResult(`the payload is not JSON: ${err.message}`);
    return;
  }
  const body = {
    app: $("send-app").value.trim(),
    type: $("send-type").value.trim(),
    priority: Number($("send-priority").value),
    payload,
  };
  showResult(kind === "ask" ? "asking…" : "sending…");
  try {
    const r = await api(kind === "ask" ? "/api/ask" : "/api/send", { body });
    if (kind === "send") showResult(`sent: ${r.id}`);
    else if (r.ok) showResult(`reply in ${r.latencyMs} ms:\n${JSON.stringify(r.reply, null, 2)}`);
    else showResult(`${r.error}: ${r.message}`);
  } catch (err) {
    showResult(`refused: ${err.message}`);
  }
  await refresh();
}

// ---------------------------------------------------------------------------------------------

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const { app, msg, to } = route();
    await Promise.all([loadApps(), loadApp(app), loadMessage(msg, to)]);
  } catch (err) {
    $("updated").textContent = `cannot reach the dashboard: ${err.message}`;
  } finally {
    refreshing = false;
  }
}

function init() {
  $("dead-retry").addEventListener("click", () => deadAction("retry"));
  $("dead-purge").addEventListener("click", () => deadAction("purge"));
  $("dead-all").addEventListener("change", (ev) => {
    for (const box of document.querySelectorAll("#dead .dead-select")) {
      if (box.disabled) continue;
      box.checked = ev.target.checked;
      box.dispatchEvent(new Event("change"));
    }
  });
  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit("send");
  });
  $("send-ask").addEventListener("click", () => submit("ask"));
  $("tail-type").addEventListener("change", startTail);
  $("tail-clear").addEventListener("click", () => $("tail").replaceChildren());
  window.addEventListener("hashchange", () => {
    if (route().app && !$("send-app").value) $("send-app").value = route().app;
    refresh();
  });
  if (route().app) $("send-app").value = route().app;
  startTail();
  refresh();
  setInterval(refresh, REFRESH_MS);
}

init();
// For tests and the curious: navigate without clicking.
window.redactorDashboard = { go, refresh };
