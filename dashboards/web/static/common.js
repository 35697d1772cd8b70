// roadpulse web: helpers shared by the operators' and commuters' pages (no external code).
"use strict";

const RP = (() => {
  const BAND_COLOURS = ["#9aa0a6", "#6d0000", "#b71c1c", "#e53935", "#f57c00", "#f9a825", "#c0ca33", "#7cb342", "#2e7d32"];
  const BAND_LABELS = ["unknown", "0–9", "10–19", "20–29", "30–39", "40–49", "50–59", "60–69", "≥ 70"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  async function getJSON(url, options) {
    const resp = await fetch(url, options);
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  // Simulated times are UTC ms; show them in Singapore time (UTC+8, no DST).
  function sgt(ms, withDay = false) {
    if (ms === null || ms === undefined) return "–";
    const d = new Date(ms + 8 * 3600 * 1000);
    const hh = String(d.getUTCHours()).padStart(2, "0"), mm = String(d.getUTCMinutes()).padStart(2, "0");
    if (!withDay) return `${hh}:${mm}`;
    const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return `${days[d.getUTCDay()]} ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${hh}:${mm}`;
  }

  function minutes(s) {
    if (s === null || s === undefined) return "–";
    return s < 600 ? `${(s / 60).toFixed(1)} min` : `${Math.round(s / 60)} min`;
  }

  function num(x, digits = 0) {
    if (x === null || x === undefined) return "–";
    return Number(x).toLocaleString("en-SG", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function bandColour(band) { return BAND_COLOURS[Math.max(0, Math.min(8, band | 0))]; }

  function legend(container) {
    container.replaceChildren(el("span", { class: "legend-title", text: "Speed band (km/h)" }));
    for (let b = 1; b <= 8; b++) {
      container.append(el("span", { class: "legend-item" },
        el("i", { style: `background:${BAND_COLOURS[b]}` }), `${b} · ${BAND_LABELS[b]}`));
    }
    container.append(el("span", { class: "legend-item" }, el("i", { style: `background:${BAND_COLOURS[0]}` }), "no data"));
  }

  // Equirectangular projection of the network's stations into a box `width` wide; the height follows
  // the network's shape (between minHeight and maxHeight) so a single corridor is not lost in empty space.
  function projection(network, width, minHeight, maxHeight, pad) {
    let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
    for (const r of network.roadways) for (const s of r.stations) {
      minLat = Math.min(minLat, s.lat); maxLat = Math.max(maxLat, s.lat);
      minLon = Math.min(minLon, s.lon); maxLon = Math.max(maxLon, s.lon);
    }
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const spanX = Math.max((maxLon - minLon) * k, 1e-6), spanY = Math.max(maxLat - minLat, 1e-6);
    const height = Math.max(minHeight, Math.min(maxHeight, (spanY / spanX) * (width - 2 * pad) + 2 * pad));
    const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    const offX = (width - spanX * scale) / 2, offY = (height - spanY * scale) / 2;
    const project = (lat, lon) => [offX + (lon - minLon) * k * scale, offY + (maxLat - lat) * scale];
    return { project, height };
  }

  // Points of a roadway moved `off` units to the left of travel, so both directions show side by side.
  function offsetLine(points, off) {
    const n = points.length;
    return points.map((p, i) => {
      const a = points[Math.max(0, i - 1)], b = points[Math.min(n - 1, i + 1)];
      let dx = b[0] - a[0], dy = b[1] - a[1];
      const len = Math.hypot(dx, dy) || 1;
      dx /= len; dy /= len;
      return [p[0] + dy * off, p[1] - dx * off];
    });
  }

  // Draw every roadway as a polyline of its stations and every segment as a line coloured by band.
  // Returns {segLines: {segment_id: SVGLineElement}, project, pointAt(segment_id, km)}.
  function drawNetwork(svgNode, network, { width = 1000, minHeight = 300, maxHeight = 640, offset = 3.5, onSegment = null } = {}) {
    svgNode.replaceChildren();
    const { project, height } = projection(network, width, minHeight, maxHeight, 40);
    svgNode.setAttribute("viewBox", `0 0 ${width} ${height.toFixed(0)}`);
    const base = svg("g", { class: "roadways" }), segs = svg("g", { class: "segments" });
    const labels = svg("g", { class: "labels" }), marks = svg("g", { class: "markers" });
    svgNode.append(base, segs, labels, marks);
    const segLines = {}, stationXY = {};
    const labelled = new Set();
    for (const r of network.roadways) {
      const pts = offsetLine(r.stations.map((s) => project(s.lat, s.lon)), offset);
      r.stations.forEach((s, i) => { stationXY[s.id] = pts[i]; });
      const line = svg("polyline", { class: "roadway", "data-roadway": r.key,
        points: pts.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ") });
      line.append(svg("title"));
      line.lastChild.textContent = `${r.name} (${r.key})`;
      base.append(line);
      r.segments.forEach((segId, i) => {
        const [a, b] = [pts[i], pts[i + 1]];
        const ln = svg("line", { class: "seg", "data-seg": segId, x1: a[0].toFixed(1), y1: a[1].toFixed(1),
          x2: b[0].toFixed(1), y2: b[1].toFixed(1), stroke: BAND_COLOURS[0] });
        const t = svg("title"); t.textContent = segId; ln.append(t);
        if (onSegment) ln.addEventListener("click", () => onSegment(segId));
        segs.append(ln);
        segLines[segId] = ln;
      });
      if (!labelled.has(r.corridor) && pts.length > 1) {
        labelled.add(r.corridor);
        const p = pts[Math.floor(pts.length / 2)];
        const text = svg("text", { x: (p[0] + 8).toFixed(1), y: (p[1] - 8).toFixed(1), class: "corridor-label" });
        text.textContent = r.corridor;
        labels.append(text);
      }
    }
    function pointAt(segId, km) {
      const s = network.segments[segId];
      if (!s) return null;
      const a = stationXY[s.up], b = stationXY[s.down];
      const f = s.end_km > s.start_km ? Math.min(1, Math.max(0, (km - s.start_km) / (s.end_km - s.start_km))) : 0;
      return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])];
    }
    return { segLines, project, pointAt, markers: marks };
  }

  function colourSegments(segLines, segments) {
    for (const [id, row] of Object.entries(segments)) {
      const ln = segLines[id];
      if (!ln) continue;
      ln.setAttribute("stroke", bandColour(row[0]));
      ln.setAttribute("data-band", row[0]);
      ln.firstChild.textContent = `${id}: band ${row[0]}, ${num(row[1])} km/h, ${num(row[2])} veh/h`;
    }
  }

  // The smallest 1, 2, 2.5 or 5 x 10^n at or above x (a round axis top).
  function niceCeil(x) {
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  // A small line chart (inline SVG) of [t_ms, value] points over the last hour.
  function lineChart(container, points, { label, unit, colour = "#1565c0", width = 460, height = 190, yMax = null } = {}) {
    const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
    const padL = 44, padR = 8, padT = 18, padB = 20;
    const vals = points.filter((p) => p[1] !== null);
    const top = yMax ?? niceCeil(Math.max(10, ...vals.map((p) => p[1])) * 1.05);
    const title = svg("text", { x: padL, y: 12, class: "chart-title" });
    const last = vals.length ? vals[vals.length - 1][1] : null;
    title.textContent = `${label}: ${last === null ? "–" : num(last)} ${unit}`;
    node.append(title);
    const t1 = points.length ? points[points.length - 1][0] : 0, t0 = t1 - 3600 * 1000;
    const x = (t) => padL + ((t - t0) / (t1 - t0 || 1)) * (width - padL - padR);
    const y = (v) => padT + (1 - v / top) * (height - padT - padB);
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac, yy = y(v);
      node.append(svg("line", { x1: padL, x2: width - padR, y1: yy, y2: yy, class: "grid" }));
      const t = svg("text", { x: padL - 4, y: yy + 4, class: "axis", "text-anchor": "end" });
      t.textContent = num(v);
      node.append(t);
    }
    for (const [txt, xx, anchor] of [["−60 min", padL, "start"], ["−30", x(t0 + 1800e3), "middle"], ["now", width - padR, "end"]]) {
      const t = svg("text", { x: xx, y: height - 4, class: "axis", "text-anchor": anchor });
      t.textContent = txt; node.append(t);
    }
    if (vals.length > 1) {
      const d = vals.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      node.append(svg("path", { d: `${d}L${x(vals[vals.length - 1][0]).toFixed(1)},${y(0)}L${x(vals[0][0]).toFixed(1)},${y(0)}Z`,
        fill: colour, opacity: "0.12" }));
      node.append(svg("path", { d, stroke: colour, fill: "none", "stroke-width": "2" }));
    } else {
      const t = svg("text", { x: width / 2, y: height / 2, class: "axis", "text-anchor": "middle" });
      t.textContent = "waiting for data…"; node.append(t);
    }
    container.replaceChildren(node);
  }

  function statusBadge(status) {
    return el("span", { class: `badge badge-${status}`, text: status });
  }

  // Live events over Server-Sent Events, reconnecting from the last event seen.
  function liveEvents(params, handlers, onState) {
    let since = params.since;
    let source = null;
    function open() {
      const q = new URLSearchParams();
      if (since !== undefined && since !== null) q.set("since", since);
      if (params.subscription) q.set("subscription", params.subscription);
      source = new EventSource(`/api/stream?${q}`);
      for (const [name, fn] of Object.entries(handlers)) {
        source.addEventListener(name, (ev) => {
          if (ev.lastEventId) since = Number(ev.lastEventId);
          fn(JSON.parse(ev.data));
        });
      }
      source.onopen = () => onState && onState("live");
      source.onerror = () => onState && onState("reconnecting");
    }
    open();
    return { close: () => source && source.close() };
  }

  function setHeaderStats(stats) {
    const set = (id, text) => { const n = document.getElementById(id); if (n) n.textContent = text; };
    set("stat-time", sgt(stats.sim_now_ms, true));
    set("stat-rate", stats.readings_per_s === null || stats.readings_per_s === undefined ? "–" : num(stats.readings_per_s));
    set("stat-readings", num(stats.readings_in));
    set("stat-dead", num(stats.dead_letters_total));
    set("stat-open", num(stats.open_incidents));
    const mode = stats.mode === "store" ? "stored run" : stats.finished ? "run finished" : stats.mode === "live" ? "live" : "waiting for run";
    set("stat-mode", mode);
    const m = document.getElementById("stat-mode");
    if (m) m.className = `mode mode-${stats.finished ? "done" : stats.mode}`;
  }

  return { getJSON, el, svg, sgt, minutes, num, bandColour, legend, drawNetwork, colourSegments, lineChart,
    statusBadge, liveEvents, setHeaderStats, BAND_COLOURS };
})();
