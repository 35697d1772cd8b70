// Operators' page: live network by speed band, incidents with lifecycle, segment charts, camera, alerts.
"use strict";

(async () => {
  const { el, svg, sgt, num, minutes } = RP;
  const network = await RP.getJSON("/api/network");
  const state = await RP.getJSON("/api/state");
  document.getElementById("network-name").textContent = network.name;
  RP.legend(document.getElementById("legend"));

  let selected = null;
  const map = RP.drawNetwork(document.getElementById("network"), network, { onSegment: (id) => select(id) });
  let segments = state.segments;
  const incidents = new Map(state.incidents.map((i) => [i.incident_id, i]));
  const cameras = new Map(state.cameras.map((c) => [c.camera_id, c]));
  let stats = state.stats;

  // ---- segment selection and charts ----------------------------------------
  async function select(segId) {
    if (!network.segments[segId]) return;
    if (selected && map.segLines[selected]) map.segLines[selected].classList.remove("selected");
    selected = segId;
    map.segLines[segId].classList.add("selected");
    await refreshSegment();
  }

  async function refreshSegment() {
    if (!selected) return;
    const info = await RP.getJSON(`/api/segment?id=${encodeURIComponent(selected)}`);
    const s = network.segments[selected];
    document.getElementById("seg-title").textContent = selected;
    document.getElementById("seg-where").textContent = `${s.roadway}, km ${s.start_km.toFixed(1)}–${s.end_km.toFixed(1)}`;
    const now = info.latest;
    const kv = document.getElementById("seg-now");
    kv.replaceChildren();
    if (now) {
      const band = el("b", { text: `${now.speed_band}` });
      band.style.color = RP.bandColour(now.speed_band);
      kv.append(el("span", {}, "band ", band), el("span", {}, el("b", { text: num(now.speed_kmh) }), " km/h"),
        el("span", {}, el("b", { text: num(now.flow_veh_h) }), " veh/h"),
        el("span", {}, "travel ", el("b", { text: minutes(now.travel_time_s) }), ` (usual ${minutes(now.usual_travel_time_s)})`),
        el("span", { class: "meta", text: `window ${sgt(now.window_start_ms)}` }));
    } else {
      kv.append(el("span", { class: "empty", text: "no window yet" }));
    }
    RP.lineChart(document.getElementById("chart-speed"), info.history.map((p) => [p.window_start_ms, p.speed_kmh]),
      { label: "Speed", unit: "km/h", colour: "#1565c0", yMax: 120 });
    RP.lineChart(document.getElementById("chart-flow"), info.history.map((p) => [p.window_start_ms, p.flow_veh_h]),
      { label: "Flow", unit: "veh/h", colour: "#6a1b9a" });
  }

  // ---- incidents ---------------------------------------------------------------
  function renderIncidents() {
    const list = document.getElementById("incidents");
    const items = [...incidents.values()].sort((a, b) =>
      (a.status === "cleared") - (b.status === "cleared") || b.event_ms - a.event_ms);
    const open = items.filter((i) => i.status !== "cleared").length;
    document.getElementById("incident-count").textContent = `${open} open · ${items.length - open} cleared`;
    list.replaceChildren();
    if (!items.length) list.append(el("li", { class: "empty", text: "No incidents detected." }));
    for (const inc of items.slice(0, 100)) {
      const life = inc.events.map((e) => `${e.status} ${sgt(e.event_ms)}`).join(" → ");
      list.append(el("li", { class: "clickable incident", "data-incident": inc.incident_id, "data-status": inc.status,
        onclick: () => select(inc.segment_id) },
        RP.statusBadge(inc.status), el("span", { class: "badge badge-algo", text: inc.algorithm }),
        el("b", { text: `${inc.corridor} (${inc.direction}) km ${inc.location_km.toFixed(1)}` }),
        el("div", { class: "meta", text: `${inc.segment_id} · severity ${inc.severity}/3 · confidence ${Math.round(inc.confidence * 100)}%` }),
        el("div", { class: "lifecycle", text: life })));
    }
    // markers for open incidents on the map
    map.markers.replaceChildren();
    for (const inc of items.filter((i) => i.status !== "cleared")) {
      const p = map.pointAt(inc.segment_id, inc.location_km);
      if (!p) continue;
      const g = svg("g", { class: "incident-marker", transform: `translate(${p[0].toFixed(1)},${p[1].toFixed(1)})` });
      g.append(svg("circle", { r: 10 }));
      const t = svg("text", { y: 5 }); t.textContent = "!"; g.append(t);
      const title = svg("title"); title.textContent = `${inc.status} incident ${inc.incident_id} (${inc.algorithm})`; g.append(title);
      g.addEventListener("click", () => select(inc.segment_id));
      map.markers.append(g);
    }
  }

  // ---- camera ----------------------------------------------------------------------
  let cameraId = null;
  function renderCameras() {
    const view = document.getElementById("camera-view");
    const sel = document.getElementById("camera-select");
    if (!cameras.size) {
      view.replaceChildren(placeholder());
      return;
    }
    const ids = [...cameras.keys()].sort();
    if (!cameraId || !cameras.has(cameraId)) cameraId = ids[0];
    sel.hidden = ids.length < 2;
    sel.replaceChildren(...ids.map((id) => el("option", { value: id, text: id })));
    sel.value = cameraId;
    sel.onchange = () => { cameraId = sel.value; renderCameras(); };
    const cam = cameras.get(cameraId);
    const img = el("img", { src: cam.url, alt: `camera ${cam.camera_id} snapshot`, id: "camera-img" });
    view.replaceChildren(img);
    document.getElementById("camera-caption").textContent =
      `${cam.camera_id}${cam.segment_id ? " · " + cam.segment_id : ""} · ${sgt(cam.time_ms)}${cam.annotated ? " · detections drawn" : ""}`;
  }

  function placeholder() {
    const node = svg("svg", { viewBox: "0 0 320 150", id: "camera-placeholder" });
    node.append(svg("rect", { width: 320, height: 150, fill: "#37474f" }));
    const t1 = svg("text", { x: 160, y: 70, fill: "#cfd8dc", "text-anchor": "middle", "font-size": "15" });
    t1.textContent = "No camera snapshot yet";
    const t2 = svg("text", { x: 160, y: 94, fill: "#90a4ae", "text-anchor": "middle", "font-size": "11" });
    t2.textContent = "cameras publish one picture a minute";
    node.append(t1, t2);
    return node;
  }

  // ---- alerts and dead letters ----------------------------------------------------------
  const alerts = state.alerts.slice(0, 30);
  function renderAlerts() {
    const list = document.getElementById("alerts");
    list.replaceChildren();
    if (!alerts.length) list.append(el("li", { class: "empty", text: "No alerts yet." }));
    for (const a of alerts) {
      list.append(el("li", { class: `alert-item ${a.kind}` },
        el("span", { class: "kind", text: a.kind.replace("_", " ") }), ` ${a.message}`,
        el("div", { class: "meta", text: `${sgt(a.at_ms)} · ${a.subscription_id}` })));
    }
  }

  function renderDead() {
    const table = document.getElementById("dead");
    const rows = Object.entries(stats.dead_letters || {}).sort((a, b) => b[1] - a[1]);
    table.replaceChildren();
    if (!rows.length) { table.append(el("tr", {}, el("td", { class: "empty", text: "none" }))); return; }
    table.append(el("tr", {}, el("th", { text: "reason" }), el("th", { text: "count" })));
    for (const [reason, n] of rows) table.append(el("tr", {}, el("td", {}, el("code", { text: reason })), el("td", { text: num(n) })));
  }

  // ---- first paint ----------------------------------------------------------------------
  RP.colourSegments(map.segLines, segments);
  RP.setHeaderStats(stats);
  renderIncidents(); renderCameras(); renderAlerts(); renderDead();
  const firstOpen = [...incidents.values()].find((i) => i.status !== "cleared");
  const slowest = Object.entries(segments).filter(([, r]) => r[0] > 0).sort((a, b) => a[1][0] - b[1][0])[0];
  await select(firstOpen ? firstOpen.segment_id : slowest ? slowest[0] : Object.keys(network.segments)[0]);

  // ---- live ----------------------------------------------------------------------------------
  RP.liveEvents({ since: state.seq }, {
    segments: (d) => {
      segments = d.segments;
      RP.colourSegments(map.segLines, segments);
      refreshSegment();
    },
    stats: (s) => { stats = s; RP.setHeaderStats(s); renderDead(); },
    incident: (inc) => {
      const first = !incidents.has(inc.incident_id);
      incidents.set(inc.incident_id, inc);
      renderIncidents();
      if (first && inc.status === "open") select(inc.segment_id);
    },
    alert: (a) => { alerts.unshift(a); alerts.length = Math.min(alerts.length, 30); renderAlerts(); },
    camera: (c) => { cameras.set(c.camera_id, c); renderCameras(); },
  }, (s) => { if (s !== "live") document.getElementById("stat-mode").textContent = s; });
})().catch((err) => {
  document.body.append(RP.el("div", { class: "toast", text: `Could not load the page: ${err.message}` }));
  throw err;
});
