// Where the dashboard's node figures come from: the control plane's
// `GET /api/v1/nodes` where the server has it, else its Prometheus `/metrics`
// text, parsed here.

const NODES_ROUTE = "/api/v1/nodes";

/**
 * The node figures: {list: [{id, up, meetings, participants, tracks,
 * forwarded_packets_per_s, loop_lag_ms}], loss, hostedIds, source}; `loss` is
 * the mean link loss the nodes report (a fraction) or null; `hostedIds` the
 * Set of meetings the nodes host, or null when they do not say.
 */
export async function readNodes(api) {
  if (api.hasNodesRoute !== false) {
    try {
      const figures = fromNodeJson(await api.get(NODES_ROUTE), NODES_ROUTE);
      api.hasNodesRoute = true;
      return figures;
    } catch (error) {
      if (error.status !== 404 && error.status !== 405) throw error;
      api.hasNodesRoute = false; // an older server: read /metrics from now on
    }
  }
  return fromMetrics(parsePrometheus(await api.get("/metrics", { text: true })), api);
}

/** Nodes from JSON: {nodes: [...]}, a list, or one node_stats() object. */
export function fromNodeJson(body, route) {
  const raw = Array.isArray(body) ? body : Array.isArray(body?.nodes) ? body.nodes : [body?.node ?? body];
  const list = raw.filter(Boolean).map((node, index) => {
    const stats = node.stats && typeof node.stats === "object" ? { ...node, ...node.stats } : node;
    const state = String(stats.status ?? stats.state ?? (stats.up === false ? "down" : "up")).toLowerCase();
    return {
      id: String(stats.node_id ?? stats.id ?? stats.name ?? (raw.length > 1 ? `node ${index + 1}` : "this node")),
      up: !["down", "failed", "unreachable"].includes(state),
      meetings: Array.isArray(stats.meetings) ? stats.meetings.length : stats.meetings,
      participants: stats.participants,
      tracks: stats.tracks,
      forwarded_packets_per_s: stats.forwarded_packets_per_s,
      loop_lag_ms: stats.loop_lag_ms,
      quality: stats.quality || null,
      meetingIds: hostedList(stats),
      state,
      uptime_s: stats.uptime_s,
      cpu_percent: stats.cpu_percent,
      memory_percent: stats.memory_percent,
    };
  });
  const hosted = list.every((node) => node.meetingIds) ? new Set(list.flatMap((node) => node.meetingIds)) : null;
  const losses = list
    .map((node) => node.quality)
    .filter(Boolean)
    .map((quality) => Math.max(quality.loss_up || 0, quality.loss_down || 0));
  return {
    list,
    loss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : null,
    hostedIds: hosted,
    source: `From ${route}`,
  };
}

/** The ids of the meetings a node hosts, where it lists them ({meeting_ids} or {meetings: [...]}). */
function hostedList(stats) {
  const ids = Array.isArray(stats.meeting_ids) ? stats.meeting_ids : Array.isArray(stats.meetings) ? stats.meetings : null;
  return ids ? ids.map((item) => String(item?.meeting_id ?? item?.id ?? item)) : null;
}

// ---- Prometheus text ----------------------------------------------------------

/** Prometheus text exposition (0.0.4) as a Map: metric name -> [{labels, value}]. */
export function parsePrometheus(text) {
  const samples = new Map();
  for (const line of String(text).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[4]);
    if (Number.isNaN(value)) continue;
    const labels = {};
    for (const label of (match[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    if (!samples.has(match[1])) samples.set(match[1], []);
    samples.get(match[1]).push({ labels, value });
  }
  return samples;
}

/** The first of `names` that is exposed, its samples summed per node label (or all together). */
function byNode(samples, names) {
  for (const name of names) {
    const rows = samples.get(name);
    if (!rows) continue;
    const nodes = new Map();
    for (const { labels, value } of rows) {
      const node = labels.node ?? labels.node_id ?? labels.instance ?? "";
      nodes.set(node, (nodes.get(node) || 0) + value);
    }
    return { name, nodes };
  }
  return null;
}

/** The worst value among the samples of the first of `names` exposed (e.g. loss up and down). */
function worst(samples, names) {
  for (const name of names) {
    const rows = samples.get(name);
    if (rows?.length) return Math.max(...rows.map((row) => row.value));
  }
  return null;
}

// Names the control plane's /metrics may use, best first.
const METRIC_NAMES = {
  meetings: ["townhall_meetings", "townhall_meetings_active", "townhall_active_meetings"],
  participants: ["townhall_participants", "townhall_participants_connected", "townhall_connected_participants"],
  tracks: ["townhall_tracks", "townhall_tracks_published"],
  forwardedRate: ["townhall_forwarded_packets_per_second", "townhall_forwarded_packets_per_s"],
  forwardedTotal: ["townhall_rtp_packets_forwarded_total", "townhall_packets_forwarded_total", "townhall_forwarded_packets_total"],
  lagSeconds: ["townhall_loop_lag_seconds", "townhall_event_loop_lag_seconds"],
  lagMs: ["townhall_loop_lag_ms", "townhall_event_loop_lag_ms"],
  up: ["townhall_media_up", "townhall_node_up"],
  down: ["townhall_node_down"],
  loss: ["townhall_packet_loss_ratio", "townhall_packet_loss", "townhall_loss_ratio"],
};

/** Node figures from parsed /metrics; a counter of forwarded packets becomes a rate between two polls. */
export function fromMetrics(samples, memory = {}) {
  const figures = {};
  for (const key of Object.keys(METRIC_NAMES)) figures[key] = byNode(samples, METRIC_NAMES[key]);
  const ids = new Set();
  for (const found of Object.values(figures)) for (const id of found?.nodes.keys() || []) ids.add(id);
  if (!ids.size) ids.add("");
  const now = performance.now();
  const previous = memory.forwardedTotals || new Map();
  const totals = new Map();
  const list = [...ids].map((id) => {
    const get = (key) => figures[key]?.nodes.get(id);
    let rate = get("forwardedRate");
    const total = get("forwardedTotal");
    if (rate === undefined && total !== undefined) {
      totals.set(id, { total, at: now });
      const before = previous.get(id);
      rate = before && now > before.at && total >= before.total ? ((total - before.total) * 1000) / (now - before.at) : undefined;
    }
    const lag = get("lagMs") ?? (get("lagSeconds") !== undefined ? get("lagSeconds") * 1000 : undefined);
    const down = get("down");
    const up = get("up");
    return {
      id: id || "this node",
      up: down !== undefined ? down === 0 : up !== undefined ? up > 0 : true,
      meetings: get("meetings"),
      participants: get("participants"),
      tracks: get("tracks"),
      forwarded_packets_per_s: rate,
      loop_lag_ms: lag,
      state: up === 0 || down > 0 ? "down" : "serving",
    };
  });
  memory.forwardedTotals = totals;
  return { list, loss: worst(samples, METRIC_NAMES.loss), hostedIds: null, source: "From /metrics" };
}

/** Alerts pending or firing now, worst first; null where the server has no alerts route. */
export async function readAlerts(api) {
  if (api.hasAlertsRoute === false) return null;
  let body;
  try {
    body = await api.get("/api/v1/alerts");
  } catch (error) {
    if (error.status === 404 || error.status === 405) {
      api.hasAlertsRoute = false;
      return null;
    }
    throw error;
  }
  const order = { firing: 0, pending: 1 };
  const rank = { critical: 0, warning: 1, info: 2 };
  return (body?.alerts || [])
    .filter((alert) => alert.state in order)
    .sort((a, b) => order[a.state] - order[b.state] || (rank[a.severity] ?? 3) - (rank[b.severity] ?? 3));
}
