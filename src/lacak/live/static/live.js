/* lacak live tracking page: keeps the server-rendered page current.
 *
 * Plain ES2017, no framework, no requests but /t/... and /static/live/... (and map tiles when the
 * operator configured them). The server renders the whole page; this script only re-renders the
 * parts a new snapshot changes, from Server-Sent Events or, failing those, by polling /state.
 * The projection and the time format here mirror lacak/live/pages.py, so an update reads exactly
 * like the first render.
 */
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live) {
    return;
  }

  const $ = (id) => document.getElementById(id);

  function readJson(id) {
    const el = $(id);
    try {
      return el ? JSON.parse(el.textContent) : null;
    } catch (e) {
      return null;
    }
  }

  let snap = readJson("lacak-data");
  const t = readJson("lacak-i18n") || {};
  if (!snap || typeof snap !== "object") {
    return;
  }
  const months = String(t.months || "").split(" ");
  const TONES = ["active", "warning", "done", "failed"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const POLL_MS = 5000;
  const DEFAULT_PHOTO = "/static/live/driver.svg";
  const SSE_GIVE_UP = 3; // errors before the first message: the stream is not getting through
  const SSE_FIRST_STATE_MS = 10000; // no first state event by then: something holds it back

  // --- small helpers ------------------------------------------------------------------------

  const str = (v) => (typeof v === "string" ? v.trim() : "");
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);

  function msg(key, vars) {
    const s = typeof t[key] === "string" ? t[key] : "";
    return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
  }

  const stateLabel = (state) => (typeof t["state." + state] === "string" ? t["state." + state] : state);

  function setText(el, text) {
    if (el && el.textContent !== text) {
      el.textContent = text; // only on change: the status region is aria-live
    }
  }

  function show(el, visible) {
    if (el) {
      el.hidden = !visible;
    }
  }

  // The wall clock as written: the snapshot's times already carry the order's own offset.
  const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/;
  const VALID_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

  function clock(at) {
    if (typeof at !== "string") {
      return null;
    }
    const m = ISO.exec(at);
    const month = m ? parseInt(m[2], 10) : 0;
    if (!m || month < 1 || month > 12) {
      return null;
    }
    return {
      iso: VALID_ISO.test(at) ? at : "",
      time: (m[4] + ":" + m[5] + " " + str(snap.zone)).trim(),
      date: parseInt(m[3], 10) + " " + months[month - 1],
    };
  }

  function latLong(lat, long) {
    const la = num(lat);
    const lo = num(long);
    if (la === null || lo === null || la < -90 || la > 90 || lo < -180 || lo > 180) {
      return null;
    }
    return [la, lo];
  }

  const point = (place) => (place && typeof place === "object" ? latLong(place.lat, place.long) : null);

  function routeOf(s) {
    const out = [];
    for (const p of Array.isArray(s.route) ? s.route : []) {
      const ll = Array.isArray(p) && p.length >= 2 ? latLong(p[0], p[1]) : null;
      if (ll) {
        out.push(ll);
      }
    }
    return out;
  }

  function safePhoto(url) {
    if (typeof url !== "string") {
      return null;
    }
    url = url.trim();
    const local = url.startsWith("/") && !url.startsWith("//") && url.indexOf("\\") < 0;
    return local || url.startsWith("https://") ? url : null;
  }

  // --- the SVG map (default; no network) ----------------------------------------------------

  function svgMap(svg) {
    const W = 400;
    const H = 300;
    const PAD = 30;
    const MIN_SPAN = 1.2e-5;
    const MAX_LAT = 85.05112878;
    let frame = null;

    function mercator(lat, long) {
      const s = Math.sin((Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180);
      return [(long + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
    }

    function fit(points) {
      if (!points.length) {
        points = [[-6.2, 106.816]];
      }
      const xs = [];
      const ys = [];
      for (const p of points) {
        const m = mercator(p[0], p[1]);
        xs.push(m[0]);
        ys.push(m[1]);
      }
      const minX = Math.min.apply(null, xs);
      const maxX = Math.max.apply(null, xs);
      const minY = Math.min.apply(null, ys);
      const maxY = Math.max.apply(null, ys);
      const spanX = Math.max(maxX - minX, MIN_SPAN);
      const spanY = Math.max(maxY - minY, MIN_SPAN);
      return {
        cx: (maxX + minX) / 2,
        cy: (maxY + minY) / 2,
        scale: Math.min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY),
      };
    }

    const round1 = (v) => Math.round(v * 10) / 10;

    function xy(p) {
      const m = mercator(p[0], p[1]);
      return [round1(W / 2 + (m[0] - frame.cx) * frame.scale), round1(H / 2 + (m[1] - frame.cy) * frame.scale)];
    }

    function setTitle(el, text) {
      let title = el.querySelector("title");
      if (!title) {
        title = document.createElementNS(SVG_NS, "title");
        el.insertBefore(title, el.firstChild);
      }
      setText(title, text);
    }

    function placeCircle(id, p, title) {
      const el = $(id);
      if (!el) {
        return;
      }
      el.classList.toggle("is-hidden", !p);
      if (p) {
        const c = xy(p);
        el.setAttribute("cx", String(c[0]));
        el.setAttribute("cy", String(c[1]));
      }
      setTitle(el, title);
    }

    function driverMarker() {
      let g = $("driver-marker");
      if (!g) {
        g = document.createElementNS(SVG_NS, "g");
        g.setAttribute("id", "driver-marker");
        g.setAttribute("class", "marker-driver");
        for (const [cls, r] of [["driver-pulse", 16], ["driver-dot", 10], ["driver-core", 4]]) {
          const c = document.createElementNS(SVG_NS, "circle");
          c.setAttribute("class", cls);
          c.setAttribute("r", String(r));
          g.appendChild(c);
        }
        svg.appendChild(g);
      }
      setTitle(g, msg("map.driver"));
      return g;
    }

    function placeDriver(p) {
      if (!p) {
        const old = $("driver-marker");
        if (old) {
          old.remove();
        }
        return;
      }
      const g = driverMarker();
      const c = xy(p);
      g.setAttribute("data-lat", String(p[0]));
      g.setAttribute("data-long", String(p[1]));
      g.setAttribute("transform", "translate(" + c[0] + " " + c[1] + ")");
      // The CSS property (allowed by the CSP, unlike a style attribute) is what transitions.
      g.style.transform = "translate(" + c[0] + "px, " + c[1] + "px)";
    }

    function render(s) {
      const route = routeOf(s);
      const origin = point(s.origin);
      const destination = point(s.destination);
      const position = point(s.position);
      const ends = [origin, destination].filter(Boolean);
      frame = fit(route.concat(ends, position ? [position] : []));
      const line = route.length >= 2 ? route : ends;
      const d = line.map((p, i) => (i ? "L" : "M") + xy(p).join(" ")).join("") || "M0 0";
      for (const id of ["route-casing", "route"]) {
        const el = $(id);
        if (el) {
          el.setAttribute("d", d);
          el.classList.toggle("is-straight", route.length < 2);
        }
      }
      const originName = str((s.origin || {}).name);
      const destinationName = str((s.destination || {}).name);
      placeCircle("origin-marker", origin, msg("map.origin", { name: originName }));
      placeCircle("destination-marker", destination, msg("map.destination", { name: destinationName }));
      placeDriver(position);
      svg.setAttribute("aria-label", msg("map.label", { origin: originName, destination: destinationName }));
    }

    function move(s) {
      const p = point(s.position);
      if (p && frame) {
        const c = xy(p);
        if (c[0] < PAD / 2 || c[0] > W - PAD / 2 || c[1] < PAD / 2 || c[1] > H - PAD / 2) {
          render(s); // left the frame: refit everything around the new position
          return;
        }
      }
      placeDriver(p);
    }

    render(snap);
    return { render: render, move: move };
  }

  // --- the tiles map (Leaflet, only when the operator configured a tiles URL) ----------------

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }

  function tilesMap(container, url) {
    const L = window.L;
    const colors = getComputedStyle(document.documentElement);
    const color = (name, fallback) => colors.getPropertyValue(name).trim() || fallback;
    const svg = $("map-svg");
    if (svg) {
      svg.remove(); // the same ids live on the Leaflet layers from now on
    }
    const el = document.createElement("div");
    el.className = "map-tiles";
    container.appendChild(el);
    const map = L.map(el, { scrollWheelZoom: false });
    // A view at once: Leaflet adds layers only to a map that has one, and the markers' ids and
    // data attributes are set when they are added (the fit to the whole route comes later).
    const start = snap.origin || {};
    map.setView([Number(start.lat) || -6.2, Number(start.long) || 106.816], 15);
    L.tileLayer(url, {
      maxZoom: 19,
      // Leaflet inserts attribution as HTML; the operator's text is shown as text.
      attribution: escapeHtml(container.getAttribute("data-attribution") || ""),
    }).addTo(map);
    const casing = L.polyline([], { color: "#ffffff", weight: 9, opacity: 0.9, interactive: false });
    const route = L.polyline([], { color: color("--brand-bar", "#00873c"), weight: 5, interactive: false });
    casing.addTo(map);
    route.addTo(map);
    const endStyle = (fill) => ({ radius: 8, color: "#ffffff", weight: 3, fillColor: fill, fillOpacity: 1 });
    const origin = L.circleMarker([0, 0], endStyle(color("--origin", "#00873c")));
    const destination = L.circleMarker([0, 0], endStyle(color("--destination", "#e0452b")));
    let driver = null;
    let fitted = false;

    function place(layer, id, p, title) {
      if (!p) {
        layer.remove();
        return;
      }
      layer.setLatLng(p);
      if (!map.hasLayer(layer)) {
        layer.addTo(map);
      }
      const path = layer.getElement();
      if (path) {
        path.setAttribute("id", id);
        let node = path.querySelector("title");
        if (!node) {
          node = document.createElementNS(SVG_NS, "title");
          path.appendChild(node);
        }
        setText(node, title);
      }
    }

    function placeDriver(p, glide) {
      if (!p) {
        if (driver) {
          driver.remove();
          driver = null;
        }
        return;
      }
      if (!driver) {
        const icon = L.divIcon({ className: "leaflet-driver", iconSize: [22, 22] });
        driver = L.marker(p, { icon: icon, keyboard: false, title: msg("map.driver") }).addTo(map);
      }
      const node = driver.getElement();
      if (node && glide) {
        // Only this move glides: Leaflet also moves markers on zoom, which must stay instant.
        node.classList.add("is-gliding");
        setTimeout(() => node.classList.remove("is-gliding"), 1300);
      }
      driver.setLatLng(p);
      if (node) {
        node.id = "driver-marker";
        node.setAttribute("data-lat", String(p[0]));
        node.setAttribute("data-long", String(p[1]));
      }
    }

    function render(s) {
      const line = routeOf(s);
      const o = point(s.origin);
      const d = point(s.destination);
      const p = point(s.position);
      casing.setLatLngs(line);
      route.setLatLngs(line);
      place(origin, "origin-marker", o, msg("map.origin", { name: str((s.origin || {}).name) }));
      place(destination, "destination-marker", d, msg("map.destination", { name: str((s.destination || {}).name) }));
      placeDriver(p, false);
      const all = line.concat([o, d, p].filter(Boolean));
      if (all.length > 1) {
        map.fitBounds(L.latLngBounds(all), { padding: [32, 32], maxZoom: 16, animate: fitted });
      } else {
        map.setView(all[0] || [-6.2, 106.816], 15, { animate: fitted });
      }
      fitted = true;
    }

    function move(s) {
      const p = point(s.position);
      placeDriver(p, true);
      if (p) {
        map.panInside(p, { padding: [32, 32] });
      }
    }

    render(snap);
    return { render: render, move: move };
  }

  function makeMap() {
    const container = $("map");
    const url = container ? container.getAttribute("data-tiles") || "" : "";
    const usable = /^(https?:\/\/|\/(?!\/))/.test(url);
    if (container && usable && window.L) {
      try {
        return tilesMap(container, url);
      } catch (e) {
        // fall through to the SVG map, which needs nothing from the network
      }
    }
    const svg = $("map-svg");
    return svg ? svgMap(svg) : { render: () => {}, move: () => {} };
  }

  // --- rendering a snapshot -----------------------------------------------------------------

  let mode = "connecting";
  let trouble = false;
  let timelineKey = JSON.stringify(snap.timeline || []);

  function renderConn() {
    const terminal = snap.terminal === true;
    let key = "conn.connecting";
    if (terminal) {
      key = "conn.done";
    } else if (trouble) {
      key = "conn.retry";
    } else if (mode === "sse") {
      key = "conn.live";
    } else if (mode === "poll") {
      key = "conn.poll";
    }
    const el = $("conn");
    setText(el, msg(key));
    show(el, true);
  }

  function renderCaption() {
    const p = point(snap.position);
    show($("legend-driver"), !!p);
    const at = snap.position ? clock(snap.position.at) : null;
    let text = "";
    if (p && at) {
      text = msg("map.position", { time: at.time });
    } else if (!p && snap.terminal !== true) {
      text = msg("map.no_position");
    }
    setText($("map-caption"), text);
  }

  function timeEl(cls, at) {
    // <time> only with a valid datetime attribute: its text alone is not machine-readable.
    const el = document.createElement(at.iso ? "time" : "span");
    el.className = cls;
    if (at.iso) {
      el.setAttribute("datetime", at.iso);
    }
    return el;
  }

  function renderTimeline(s) {
    const entries = Array.isArray(s.timeline) ? s.timeline.filter((e) => e && typeof e === "object") : [];
    const key = JSON.stringify(entries);
    show($("timeline-empty"), entries.length === 0);
    const latest = entries.length ? clock(entries[0].at) : null;
    show($("updated"), !!latest);
    if (latest) {
      setText($("updated-time"), latest.time);
    }
    if (key === timelineKey) {
      return;
    }
    timelineKey = key;
    const list = $("timeline");
    const items = entries.map((e, i) => {
      const state = str(e.state);
      const li = document.createElement("li");
      li.setAttribute("data-state", state);
      if (i === 0) {
        li.className = "is-current";
      }
      const label = document.createElement("span");
      label.className = "tl-label";
      label.textContent = stateLabel(state);
      li.appendChild(label);
      const at = clock(e.at);
      if (at) {
        const time = timeEl("tl-time", at);
        const c = document.createElement("span");
        c.className = "tl-clock";
        c.textContent = at.time;
        const d = document.createElement("span");
        d.className = "tl-date";
        d.textContent = at.date;
        time.append(c, " ", d);
        li.append(" ", time);
      }
      return li;
    });
    list.textContent = "";
    list.append.apply(list, items);
  }

  function renderDriver(s) {
    const d = s.driver && typeof s.driver === "object" && str(s.driver.name) ? s.driver : null;
    show($("driver"), !!d);
    if (!d) {
      return;
    }
    const name = str(d.name);
    const phone = str(d.phone);
    const plate = str(d.plate);
    setText($("driver-name"), name);
    setText($("driver-phone"), phone);
    show($("driver-phone").parentNode, !!phone);
    setText($("driver-plate"), plate);
    show($("driver-plate").parentNode, !!plate);
    const img = $("driver-photo");
    const src = safePhoto(d.photo) || DEFAULT_PHOTO;
    if (img.getAttribute("src") !== src) {
      img.setAttribute("src", src);
    }
    img.alt = msg("driver.photo", { name: name });
  }

  function renderPlaces(s) {
    const o = s.origin && typeof s.origin === "object" ? s.origin : {};
    const d = s.destination && typeof s.destination === "object" ? s.destination : {};
    setText($("origin").querySelector(".place-name"), str(o.name));
    const dest = $("destination");
    setText(dest.querySelector(".place-name"), str(d.name));
    const address = dest.querySelector(".place-address");
    setText(address, str(d.address));
    show(address, !!str(d.address));
  }

  function renderStatus(s) {
    const state = str(s.state);
    const label = stateLabel(state);
    live.setAttribute("data-seq", String(Math.trunc(num(s.seq) || 0)));
    live.setAttribute("data-state", state);
    live.setAttribute("data-tone", TONES.indexOf(s.tone) >= 0 ? s.tone : "active");
    live.setAttribute("data-terminal", s.terminal === true ? "true" : "false");
    setText($("status"), label);
    setText($("status-hint"), msg("hint." + state));
    const note = str(s.note);
    setText($("status-note"), note);
    show($("status-note"), !!note);
    document.title = label + " · " + msg("page.title");
    const p = s.progress && typeof s.progress === "object" ? s.progress : {};
    const max = Math.max(1, Math.trunc(num(p.max) || 5));
    const value = Math.max(0, Math.min(max, Math.trunc(num(p.value) || 0)));
    const bar = $("progress");
    bar.max = max;
    bar.value = value;
    setText(bar, value + "/" + max);
    setText($("progress-step"), msg("progress.step", { value: value, max: max }));
  }

  const map = makeMap();

  function render(next) {
    snap = next;
    renderStatus(next);
    renderTimeline(next);
    renderDriver(next);
    renderPlaces(next);
    map.render(next);
    renderCaption();
    renderConn();
  }

  // A full snapshot, from an SSE `state` event or a poll.
  function onSnapshot(next) {
    if (!next || typeof next !== "object") {
      return;
    }
    const seq = num(next.seq) || 0;
    const current = num(snap.seq) || 0;
    if (seq < current) {
      return; // an older view arriving late
    }
    const onlyMoved = JSON.stringify(Object.assign({}, next, { position: snap.position })) === JSON.stringify(snap);
    if (!onlyMoved) {
      render(next);
    } else if (JSON.stringify(next.position) !== JSON.stringify(snap.position)) {
      if (point(next.position)) {
        onPosition(next.position); // only the driver moved: glide instead of redrawing
      } else {
        render(next);
      }
    }
  }

  function onPosition(p) {
    if (!point(p) || snap.terminal === true) {
      return;
    }
    snap = Object.assign({}, snap, { position: p });
    map.move(snap);
    renderCaption();
  }

  function parse(data) {
    try {
      return JSON.parse(data);
    } catch (e) {
      return null;
    }
  }

  function setMode(next, isTrouble) {
    mode = next;
    trouble = !!isTrouble;
    live.setAttribute("data-mode", next);
    renderConn();
  }

  // --- transports ---------------------------------------------------------------------------

  let polling = false;

  function poll() {
    if (polling) {
      return;
    }
    polling = true;
    setMode("poll");
    const url = live.getAttribute("data-state-url");
    const tick = async () => {
      try {
        const r = await fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
        if (r.status === 404 || r.status === 410) {
          location.reload(); // the server now answers with its "expired" or "not found" page
          return;
        }
        if (r.ok) {
          onSnapshot(await r.json());
          setMode("poll");
        } else {
          setMode("poll", true);
        }
      } catch (e) {
        setMode("poll", true);
      }
      setTimeout(tick, POLL_MS);
    };
    tick();
  }

  function sse() {
    let source;
    try {
      source = new EventSource(live.getAttribute("data-events"));
    } catch (e) {
      poll();
      return;
    }
    let heard = false;
    let errors = 0;
    const alive = () => {
      heard = true;
      errors = 0;
      if (mode !== "sse" || trouble) {
        setMode("sse");
      }
    };
    source.onopen = alive;
    // The first connection always starts with a state event. A proxy that passes the headers
    // but holds the body back raises no error at all: without that event, poll instead.
    let stated = false;
    const watchdog = setTimeout(() => {
      if (!stated) {
        source.close();
        poll();
      }
    }, SSE_FIRST_STATE_MS);
    source.addEventListener("state", (ev) => {
      stated = true;
      clearTimeout(watchdog);
      alive();
      onSnapshot(parse(ev.data));
    });
    source.addEventListener("position", (ev) => {
      alive();
      onPosition(parse(ev.data));
    });
    source.addEventListener("gone", () => {
      source.close();
      location.reload();
    });
    source.onerror = () => {
      errors += 1;
      // CLOSED: the browser gave up (an error status or not an event stream). Repeated errors
      // before anything arrived: a proxy is in the way. Either way polling still works.
      if (source.readyState === EventSource.CLOSED || (!heard && errors >= SSE_GIVE_UP)) {
        source.close();
        poll();
      } else {
        setMode("connecting", true); // EventSource reconnects by itself (retry: 3000)
      }
    };
  }

  renderConn();
  const forcePoll = new URLSearchParams(location.search).get("transport") === "poll";
  if (window.EventSource && !forcePoll) {
    sse();
  } else {
    poll();
  }
})();
