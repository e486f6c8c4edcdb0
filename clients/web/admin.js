// Townhall admin dashboard: the server's nodes, its live meetings and the
// quality of every participant's link, polled every 2 s with the API key.
//
// The key is asked once and kept in sessionStorage (this tab only, gone when
// it closes), never in the URL. Everything shown that came from the server
// (titles, names) is set as text, never as HTML: this page holds the key.

import { MediaChart } from "./admin-chart.js";
import { readAlerts, readNodes } from "./admin-data.js";

const KEY_STORAGE = "townhall.adminKey";
const POLL_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;
const MEETING_PAGES = 5; // at most 5 x 100 meetings listed per poll
const MEETING_PAGE_SIZE = 100;
const MAX_PROBED = 25; // open meetings asked for numbers when the nodes do not say which they host

const $ = (id) => document.getElementById(id);

/** The API refused our key (401/403): back to the sign-in form. */
class KeyRefused extends Error {}

/** The control plane's REST API with the admin key. */
class AdminApi {
  constructor(key) {
    this.key = key;
  }

  /** GET a path; the answer as JSON (or text); throws KeyRefused, or Error with `status`. */
  async get(path, { text = false } = {}) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${this.key}`, Accept: text ? "text/plain" : "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.status === 401 || response.status === 403) throw new KeyRefused("the API key was not accepted");
    if (!response.ok) {
      const error = new Error(`GET ${path}: HTTP ${response.status}`);
      error.status = response.status;
      error.body = await response.json().catch(() => null);
      throw error;
    }
    return text ? response.text() : response.json();
  }

  /** Every meeting that has not ended, oldest first (at most MEETING_PAGES pages). */
  async openMeetings() {
    const meetings = [];
    let cursor = null;
    for (let page = 0; page < MEETING_PAGES; page += 1) {
      const query = new URLSearchParams({ limit: String(MEETING_PAGE_SIZE) });
      if (cursor) query.set("cursor", cursor);
      const body = await this.get(`/api/v1/meetings?${query}`);
      meetings.push(...(body.meetings || []));
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    return meetings.filter((meeting) => meeting.status !== "ended");
  }

  /**
   * The meetings with people in them now, each with its live numbers: those
   * started ("live") and those a node hosts. Where the nodes do not list the
   * meetings they host, the most recently changed open meetings are asked.
   */
  async liveMeetings(hostedIds) {
    const open = await this.openMeetings();
    const candidates = hostedIds
      ? open.filter((meeting) => meeting.status === "live" || hostedIds.has(meeting.id))
      : [...open].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at))).slice(0, MAX_PROBED);
    const metrics = await Promise.all(candidates.map((meeting) => this.meetingMetrics(meeting.id).catch(() => null)));
    return candidates
      .map((meeting, index) => ({ meeting, metrics: metrics[index] }))
      .filter(({ meeting, metrics }) => meeting.status === "live" || metrics?.hosted || metrics?.participants?.length)
      .sort((a, b) => String(a.meeting.created_at).localeCompare(String(b.meeting.created_at)));
  }

  /** A meeting's live numbers per participant, or null when no node hosts it now. */
  async meetingMetrics(meetingId) {
    try {
      return await this.get(`/api/v1/meetings/${encodeURIComponent(meetingId)}/metrics`);
    } catch (error) {
      if (error.status === 404 || error.status === 409) return null;
      throw error;
    }
  }
}

// ---- formatting --------------------------------------------------------------

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function formatCount(value) {
  return isNumber(value) ? integer.format(value) : "–";
}

export function formatLoss(fraction) {
  if (!isNumber(fraction)) return "–";
  const percent = fraction * 100;
  return `${percent > 0 && percent < 0.1 ? "<0.1" : oneDecimal.format(percent)}%`;
}

export function formatMs(value) {
  return isNumber(value) ? `${integer.format(value)} ms` : "–";
}

export function formatKbps(value) {
  if (!isNumber(value)) return "–";
  return value >= 1000 ? `${oneDecimal.format(value / 1000)} Mb/s` : `${integer.format(value)} kb/s`;
}

export function formatDuration(seconds) {
  if (!isNumber(seconds)) return "–";
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  return minutes ? `${minutes}m ${String(total % 60).padStart(2, "0")}s` : `${total}s`;
}

/** good / fair / poor for a 0–5 quality score; none when there is no media to judge. */
export function scoreTone(score) {
  if (!isNumber(score) || score <= 0) return "none";
  if (score >= 4) return "good";
  if (score >= 3) return "fair";
  return "poor";
}

/** good / fair / poor for a loss fraction (2 % is audible, 5 % breaks video). */
export function lossTone(fraction) {
  if (!isNumber(fraction)) return "none";
  if (fraction >= 0.05) return "poor";
  if (fraction >= 0.02) return "fair";
  return "good";
}

/** "serving · up 3m 10s · CPU 40% · memory 61%", what is known of it. */
function nodeDetail(node) {
  const parts = [node.state || (node.up ? "serving" : "down")];
  if (isNumber(node.uptime_s)) parts.push(`up ${formatDuration(node.uptime_s)}`);
  if (isNumber(node.cpu_percent)) parts.push(`CPU ${integer.format(node.cpu_percent)}%`);
  if (isNumber(node.memory_percent)) parts.push(`memory ${integer.format(node.memory_percent)}%`);
  return parts.join(" · ");
}

function element(tag, { className, text, attrs } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function cell(field, text, { tone, className = "num", title } = {}) {
  const td = element("td", { className, text, attrs: { "data-field": field } });
  if (tone) td.dataset.tone = tone;
  if (title) td.title = title;
  return td;
}

function scoreCell(field, score, kind) {
  const tone = scoreTone(score);
  const td = element("td", { className: "num", attrs: { "data-field": field } });
  const chip = element("span", {
    className: "score",
    text: tone === "none" ? "–" : oneDecimal.format(score),
    attrs: { "data-tone": tone },
  });
  chip.setAttribute(
    "aria-label",
    tone === "none" ? `no ${kind}` : `${kind} quality ${oneDecimal.format(score)} of 5, ${tone}`,
  );
  td.append(chip);
  return td;
}

// ---- the page ------------------------------------------------------------------

class Dashboard {
  constructor() {
    this.api = null;
    this.timer = null;
    this.polling = false;
    this.chart = new MediaChart($("chart"));
    this.meetingCards = new Map(); // meeting id -> {card, body, ...}
    this.collapsed = new Set();
    this.lastOk = 0;
  }

  start() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn($("api-key").value.trim());
    });
    $("sign-out").addEventListener("click", () => this.signOut());
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) this.open(key);
    else this.showSignIn("");
  }

  showSignIn(error) {
    clearTimeout(this.timer);
    this.timer = null;
    this.api = null;
    $("admin").dataset.screen = "signin";
    $("signin").hidden = false;
    $("dashboard").hidden = true;
    $("admin-tools").hidden = true;
    $("signin-error").textContent = error;
    $("signin-error").hidden = !error;
    $("signin-button").disabled = false;
    $("api-key").focus();
  }

  async signIn(key) {
    if (!key) {
      this.showSignIn("Enter the API key.");
      return;
    }
    $("signin-button").disabled = true;
    try {
      // Any admin-only read tells whether the key is good.
      await new AdminApi(key).get("/api/v1/meetings?limit=1");
    } catch (error) {
      this.showSignIn(
        error instanceof KeyRefused ? "That key was not accepted." : `Could not reach the server (${error.message}).`,
      );
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("api-key").value = "";
    this.open(key);
  }

  signOut() {
    sessionStorage.removeItem(KEY_STORAGE);
    this.chart.clear();
    this.meetingCards.clear();
    $("meetings").replaceChildren();
    this.showSignIn("");
  }

  open(key) {
    this.api = new AdminApi(key);
    $("admin").dataset.screen = "dashboard";
    $("signin").hidden = true;
    $("dashboard").hidden = false;
    $("admin-tools").hidden = false;
    this.setPollState("starting", "Connecting…");
    this.poll();
  }

  /** One round of reads, then the next in POLL_MS (never two rounds at once). */
  async poll() {
    if (this.polling || !this.api) return;
    this.polling = true;
    const api = this.api;
    try {
      await this.refresh(api);
      this.lastOk = Date.now();
      this.setPollState("live", "Live");
    } catch (error) {
      if (error instanceof KeyRefused) {
        sessionStorage.removeItem(KEY_STORAGE);
        this.polling = false;
        this.showSignIn("The server no longer accepts this key. Enter it again.");
        return;
      }
      console.warn("townhall admin: refresh failed", error);
      this.setPollState("failed", "Server unreachable, retrying…");
    } finally {
      this.polling = false;
    }
    if (this.api === api) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  async refresh(api) {
    // The meetings list tells whether the key is good; /metrics may be guarded otherwise.
    const nodes = readNodes(api).catch((error) => {
      console.warn("townhall admin: no node figures", error);
      return { list: [], loss: null, source: "The server reports no node figures." };
    });
    const alerts = readAlerts(api).catch((error) => {
      console.warn("townhall admin: no alerts", error);
      return null;
    });
    const nodeFigures = await nodes;
    const rows = await api.liveMeetings(nodeFigures.hostedIds);
    const alertList = await alerts;
    if (api !== this.api) return;
    this.renderAlerts(alertList);
    this.renderTotals(nodeFigures, rows);
    this.renderNodes(nodeFigures);
    this.renderMeetings(rows);
  }

  setPollState(state, text) {
    const pill = $("poll-state");
    pill.dataset.state = state;
    pill.textContent = text;
  }

  renderTotals(nodes, rows) {
    const participants = rows.flatMap((row) => row.metrics?.participants || []);
    const connected = participants.filter((p) => p.connection_state === "connected");
    const sum = (key) => nodes.list.reduce((total, node) => total + (isNumber(node[key]) ? node[key] : 0), 0);
    const known = (key) => nodes.list.some((node) => isNumber(node[key]));
    const packets = known("forwarded_packets_per_s") ? sum("forwarded_packets_per_s") : null;
    // Loss as the people in the meetings feel it: the worse direction, averaged.
    const losses = connected.map((p) => Math.max(p.loss_up || 0, p.loss_down || 0));
    const loss = losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : nodes.loss;
    const lag = nodes.list.reduce((worst, node) => Math.max(worst, isNumber(node.loop_lag_ms) ? node.loop_lag_ms : 0), 0);

    $("stat-meetings").textContent = formatCount(rows.length);
    $("stat-participants").textContent = formatCount(
      known("participants") ? sum("participants") : rows.reduce((n, row) => n + (row.metrics?.participants?.length || 0), 0),
    );
    $("stat-forwarded").textContent = formatCount(packets);
    $("stat-loss").textContent = formatLoss(loss);
    $("stat-loss").closest(".stat").dataset.tone = lossTone(loss);
    $("stat-lag").textContent = known("loop_lag_ms") ? formatMs(lag) : "–";
    this.chart.add(Date.now(), packets, isNumber(loss) ? loss : null);
  }

  renderNodes(nodes) {
    const body = $("nodes-body");
    body.replaceChildren(
      ...nodes.list.flatMap((node) => {
        const row = element("tr", { attrs: { "data-node": node.id } });
        const name = element("td", { className: "node-name" });
        const line = element("span", { className: "node-line" });
        const dot = element("span", { className: "dot", attrs: { "data-tone": node.up ? "good" : "poor" } });
        line.append(dot, element("span", { text: node.id }));
        name.append(line);
        row.append(
          name,
          cell("meetings", formatCount(node.meetings)),
          cell("participants", formatCount(node.participants)),
          cell("forwarded", formatCount(node.forwarded_packets_per_s)),
          cell("lag", formatMs(node.loop_lag_ms), { tone: node.loop_lag_ms > 50 ? "poor" : undefined }),
        );
        const detail = element("tr", { className: "node-detail-row" });
        detail.append(element("td", { className: "node-detail", text: nodeDetail(node), attrs: { colspan: "5" } }));
        return [row, detail];
      }),
    );
    $("nodes-source").textContent = nodes.source;
  }

  renderAlerts(alerts) {
    $("alerts-section").hidden = alerts === null;
    if (alerts === null) return;
    $("alerts-none").hidden = alerts.length > 0;
    $("alerts-list").replaceChildren(
      ...alerts.map((alert) => {
        const item = element("li", { className: "alert", attrs: { "data-state": alert.state, "data-severity": alert.severity } });
        const what = element("span", { className: "alert-rule", text: alert.rule });
        const where = alert.subject && alert.subject !== "node" ? ` · ${alert.subject}` : "";
        const value = isNumber(alert.value) ? `${+alert.value.toFixed(3)} ${alert.comparison} ${alert.threshold}` : "";
        item.append(
          element("span", { className: "alert-state", text: alert.state }),
          what,
          element("span", { className: "alert-detail", text: `${value}${where}` }),
        );
        return item;
      }),
    );
  }

  renderMeetings(rows) {
    $("meetings-count").textContent = rows.length ? String(rows.length) : "";
    $("meetings-empty").hidden = rows.length > 0;
    const seen = new Set();
    const container = $("meetings");
    for (const { meeting, metrics } of rows) {
      seen.add(meeting.id);
      let view = this.meetingCards.get(meeting.id);
      if (!view) {
        view = this.meetingCard(meeting);
        this.meetingCards.set(meeting.id, view);
      }
      container.append(view.card); // keeps the server's order, moves nothing that stayed
      this.updateMeeting(view, meeting, metrics);
    }
    for (const [id, view] of this.meetingCards) {
      if (seen.has(id)) continue;
      view.card.remove();
      this.meetingCards.delete(id);
    }
  }

  meetingCard(meeting) {
    const card = element("details", { className: "meeting", attrs: { "data-meeting-id": meeting.id } });
    card.open = !this.collapsed.has(meeting.id);
    card.addEventListener("toggle", () => {
      if (card.open) this.collapsed.delete(meeting.id);
      else this.collapsed.add(meeting.id);
    });
    const summary = element("summary", { className: "meeting-summary" });
    const title = element("span", { className: "meeting-title-text" });
    const id = element("code", { className: "meeting-id", text: meeting.id.slice(0, 8), attrs: { title: meeting.id } });
    const people = element("span", { className: "pill pill--small meeting-people" });
    people.innerHTML = '<svg class="icon" aria-hidden="true"><use href="#i-people"/></svg>';
    const peopleCount = element("span", { attrs: { "data-field": "participant-count" } });
    people.append(peopleCount);
    const status = element("span", { className: "meeting-status" });
    const speaking = element("span", { className: "meeting-speaking" });
    const health = element("span", { className: "health" });
    summary.append(title, id, status, people, speaking, health);

    const table = element("table", { className: "table participants-table" });
    table.innerHTML = `<thead><tr>
      <th scope="col">Participant</th><th scope="col">State</th>
      <th scope="col" class="num">RTT</th><th scope="col" class="num">Jitter ↑/↓</th>
      <th scope="col" class="num">Loss ↑</th><th scope="col" class="num">Loss ↓</th>
      <th scope="col" class="num">Bitrate ↑</th><th scope="col" class="num">Bitrate ↓</th>
      <th scope="col" class="num">Audio</th><th scope="col" class="num">Video</th>
      <th scope="col" class="num">Spoke</th></tr></thead>`;
    const body = element("tbody");
    table.append(body);
    const note = element("p", { className: "card-note" });
    card.append(summary, table, note);
    return { card, title, status, people: peopleCount, speaking, health, body, note };
  }

  updateMeeting(view, meeting, metrics) {
    view.title.textContent = meeting.title || "Untitled meeting";
    view.status.textContent = meeting.status === "live" ? "Started" : "Not started";
    view.status.dataset.status = meeting.status;
    view.status.title =
      meeting.status === "live" ? "A host started the meeting" : "People are in, but no host has started the meeting";
    const participants = metrics?.participants || [];
    view.people.textContent = String(participants.length);
    view.people.parentElement.title = `${participants.length} connected`;
    const speakers = participants.filter((p) => p.speaking).map((p) => p.name || "Guest");
    view.speaking.textContent = speakers.length ? `${speakers.join(", ")} speaking` : "";
    const worst = participants.reduce((low, p) => {
      const scores = [p.audio_quality, p.video_quality].filter((s) => isNumber(s) && s > 0);
      return scores.length ? Math.min(low, ...scores) : low;
    }, Infinity);
    const tone = worst === Infinity ? "none" : scoreTone(worst);
    view.health.dataset.tone = tone;
    view.health.textContent = { good: "Good", fair: "Fair", poor: "Poor", none: "No media yet" }[tone];
    view.health.title = tone === "none" ? "" : `Worst link quality ${oneDecimal.format(worst)} of 5`;
    view.note.hidden = Boolean(metrics && participants.length);
    view.note.textContent = metrics ? "Nobody is connected." : "No node reports this meeting's media.";
    view.body.replaceChildren(...participants.map((p) => this.participantRow(p)));
  }

  participantRow(p) {
    const row = element("tr", { attrs: { "data-participant-id": p.participant_id || "" } });
    const name = element("td", { attrs: { "data-field": "name" } });
    const label = element("span", { className: "participant-name" });
    if (p.speaking) {
      name.dataset.speaking = "true";
      label.innerHTML = '<svg class="icon" aria-label="speaking" role="img"><use href="#i-speaker"/></svg>';
    }
    label.append(element("span", { text: p.name || "Guest" }));
    name.append(label);
    const state = p.connection_state || "new";
    const jitter = [p.jitter_up_ms, p.jitter_down_ms].map((v) => (isNumber(v) ? integer.format(v) : "–")).join(" / ");
    row.append(
      name,
      cell("connection_state", state, { className: "state", tone: state === "connected" ? "good" : state === "failed" ? "poor" : "fair" }),
      cell("rtt_ms", formatMs(p.rtt_ms), { tone: p.rtt_ms > 300 ? "poor" : p.rtt_ms > 150 ? "fair" : undefined }),
      cell("jitter_ms", `${jitter} ms`),
      cell("loss_up", formatLoss(p.loss_up), { tone: lossTone(p.loss_up) }),
      cell("loss_down", formatLoss(p.loss_down), { tone: lossTone(p.loss_down) }),
      cell("bitrate_up_kbps", formatKbps(p.bitrate_up_kbps)),
      cell("bitrate_down_kbps", formatKbps(p.bitrate_down_kbps)),
      scoreCell("audio_quality", p.audio_quality, "audio"),
      scoreCell("video_quality", p.video_quality, "video"),
      cell("speaking_s", formatDuration(p.speaking_s)),
    );
    return row;
  }
}

const dashboard = new Dashboard();
// Read-only state for people and tests; the page never reads it.
window.townhallAdmin = Object.freeze({
  get chartPoints() {
    return dashboard.chart.points.map((point) => ({ ...point }));
  },
  get lastOk() {
    return dashboard.lastOk;
  },
});
dashboard.start();
