// Commuters' page: subscribe to a stretch of expressway, watch its travel time, get live alerts.
"use strict";

(async () => {
  const { el, sgt, minutes, num } = RP;
  const network = await RP.getJSON("/api/network");
  const roadways = new Map(network.roadways.map((r) => [r.key, r]));
  const select = document.getElementById("roadway");
  for (const r of network.roadways) select.append(el("option", { value: r.key, text: `${r.name} — ${r.key}` }));
  const fromKm = document.getElementById("from-km"), toKm = document.getElementById("to-km");

  function fillKm() {
    const r = roadways.get(select.value);
    const first = r.stations[0].km, last = r.stations[r.stations.length - 1].km;
    const mid = (first + last) / 2;
    fromKm.value = Math.max(first, mid - 2.5).toFixed(1);
    toKm.value = Math.min(last, mid + 2.5).toFixed(1);
    document.getElementById("roadway-hint").textContent =
      `${r.key} runs from km ${first.toFixed(1)} to km ${last.toFixed(1)} (${r.segments.length} segments).`;
  }
  select.addEventListener("change", fillKm);
  fillKm();

  let sub = null, live = null, segments = {};
  const alerts = [];

  function renderRoute(travel) {
    const body = document.getElementById("route-body");
    body.className = "";
    document.getElementById("route-name").textContent = sub.name === sub.id ? sub.id : `${sub.name} · ${sub.id}`;
    const where = sub.route ? `${sub.route.roadway}, km ${sub.route.from_km.toFixed(1)}–${sub.route.to_km.toFixed(1)}`
      : `${sub.segments.length} segments`;
    const strip = el("div", { class: "strip", title: "segments of your route, coloured by speed band" });
    for (const id of sub.segments) {
      const row = segments[id];
      strip.append(el("i", { style: `background:${RP.bandColour(row ? row[0] : 0)}`, title: `${id}: band ${row ? row[0] : "–"}` }));
    }
    const first = network.segments[sub.segments[0]], last = network.segments[sub.segments[sub.segments.length - 1]];
    const kms = el("div", { class: "strip-km" }, el("span", { text: `${first.up} · km ${first.start_km.toFixed(1)}` }),
      el("span", { text: `${sub.segments.length} segments` }), el("span", { text: `km ${last.end_km.toFixed(1)} · ${last.down}` }));
    const tt = travel || sub.travel_time || {};
    const late = tt.usual_s && tt.now_s > tt.usual_s * 1.15;
    const nowNode = el("div", {}, el("div", { class: "meta", text: "travel time now" }),
      el("span", { class: `big ${late ? "late" : "ok"}`, id: "tt-now", text: minutes(tt.now_s) }));
    const usualNode = el("div", {}, el("div", { class: "meta", text: "usual at this time" }),
      el("span", { class: "big", id: "tt-usual", text: minutes(tt.usual_s) }));
    body.replaceChildren(el("div", { text: where }), strip, kms,
      el("div", { class: "tt" }, nowNode, usualNode,
        el("div", { class: "meta", text: tt.window_start_ms ? `as of ${sgt(tt.window_start_ms)}` : "waiting for traffic data" })),
      el("button", { class: "secondary", type: "button", onclick: unsubscribe, text: "Unsubscribe" }));
  }

  function renderAlerts() {
    const list = document.getElementById("alerts");
    list.replaceChildren();
    document.getElementById("alert-count").textContent = alerts.length ? `${alerts.length} so far` : "";
    if (!alerts.length) list.append(el("li", { class: "empty", text: sub ? "No alerts yet — all quiet on your route." : "Subscribe to get alerts." }));
    for (const a of alerts) {
      const tt = a.travel_time_now_s !== null && a.travel_time_now_s !== undefined
        ? ` · travel time ${minutes(a.travel_time_now_s)} now vs ${minutes(a.travel_time_usual_s)} usual` : "";
      list.append(el("li", { class: `alert-item ${a.kind}`, "data-kind": a.kind },
        el("span", { class: "kind", text: { incident_open: "Incident", incident_clear: "Cleared", speed_band_drop: "Slowing" }[a.kind] || a.kind }),
        ` ${a.message}`, el("div", { class: "meta", text: `${sgt(a.at_ms, true)}${tt}` })));
    }
  }

  async function renderDeliveries() {
    if (!sub || !sub.webhook_url) return;
    const info = await RP.getJSON(`/api/subscriptions/${sub.id}`);
    const table = document.getElementById("deliveries");
    table.replaceChildren(el("tr", {}, el("th", { text: "alert" }), el("th", { text: "state" }), el("th", { text: "attempts" })));
    for (const d of info.deliveries.slice(0, 20)) {
      const tries = d.attempts.map((t) => t.status ?? "error").join(", ");
      table.append(el("tr", {}, el("td", {}, el("code", { text: d.alert_id })), el("td", { text: d.state }), el("td", { text: tries })));
    }
  }

  async function open(subscription, secret) {
    sub = subscription;
    location.hash = `sub=${sub.id}`;
    const info = await RP.getJSON(`/api/subscriptions/${sub.id}`);
    sub.travel_time = info.travel_time;
    alerts.splice(0, alerts.length, ...info.alerts);
    const state = await RP.getJSON("/api/state");
    segments = state.segments;
    RP.setHeaderStats(state.stats);
    renderRoute(info.travel_time);
    renderAlerts();
    const card = document.getElementById("webhook-card");
    card.hidden = !sub.webhook_url;
    if (sub.webhook_url) {
      document.getElementById("webhook-url").textContent = sub.webhook_url;
      document.getElementById("webhook-secret").replaceChildren(secret
        ? el("p", {}, "Signing secret (shown once): ", el("span", { class: "secret", id: "secret", text: secret }),
          el("br"), "Each POST carries ", el("code", { text: "X-Roadpulse-Signature: sha256=HMAC(secret, body)" }), ".")
        : el("p", { class: "hint", text: "Signed with the secret shown when you subscribed." }));
      renderDeliveries();
    }
    if (live) live.close();
    live = RP.liveEvents({ since: info.seq, subscription: sub.id }, {
      segments: (d) => { segments = d.segments; renderRoute(d.travel_time); },
      stats: (s) => RP.setHeaderStats(s),
      alert: (a) => {
        if (a.subscription_id !== sub.id || alerts.some((x) => x.alert_id === a.alert_id)) return;
        alerts.unshift(a);
        renderAlerts();
        setTimeout(renderDeliveries, 1500);
      },
    }, (s) => { if (s !== "live") document.getElementById("stat-mode").textContent = s; });
  }

  async function unsubscribe() {
    if (!sub) return;
    await fetch(`/api/subscriptions/${sub.id}`, { method: "DELETE" });
    if (live) live.close();
    sub = null; alerts.length = 0; location.hash = "";
    document.getElementById("route-name").textContent = "not subscribed yet";
    const body = document.getElementById("route-body");
    body.className = "empty"; body.textContent = "Choose a stretch of expressway on the left and subscribe.";
    document.getElementById("webhook-card").hidden = true;
    renderAlerts();
  }

  document.getElementById("sub-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("sub-error");
    err.textContent = "";
    const body = { name: document.getElementById("sub-name").value.trim(),
      route: { roadway: select.value, from_km: Number(fromKm.value), to_km: Number(toKm.value) } };
    const hook = document.getElementById("webhook").value.trim();
    if (hook) body.webhook_url = hook;
    try {
      const created = await RP.getJSON("/api/subscriptions", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
      await open(created, created.secret);
    } catch (e) {
      err.textContent = e.message;
    }
  });

  renderAlerts();
  const state = await RP.getJSON("/api/state");
  RP.setHeaderStats(state.stats);
  const m = location.hash.match(/sub=([\w-]+)/);
  if (m) {
    try { await open(await RP.getJSON(`/api/subscriptions/${m[1]}`)); } catch (e) { location.hash = ""; }
  }
})().catch((err) => {
  document.body.append(RP.el("div", { class: "toast", text: `Could not load the page: ${err.message}` }));
  throw err;
});
