// The page: screens, the tile grid, the control bar, toasts and messages.
// Nothing here speaks to the network; app.js drives it.

const $ = (id) => document.getElementById(id);

const TILE_ASPECT = 16 / 9;
const TILE_GAP_PX = 12;

/** Up to two initials, for the avatar shown when a camera is off. */
export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return "?";
  const first = Array.from(words[0])[0] || "";
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] || "" : "";
  return (first + last).toUpperCase();
}

// Hues that keep white initials readable; one is picked per participant.
const AVATAR_HUES = [4, 24, 145, 170, 200, 225, 262, 290, 320, 345];

/** A stable hue per participant (FNV-1a over the id) so avatars are told apart. */
export function hueFor(key) {
  let hash = 0x811c9dc5;
  for (const char of String(key)) hash = Math.imul(hash ^ char.codePointAt(0), 0x01000193) >>> 0;
  return AVATAR_HUES[hash % AVATAR_HUES.length];
}

const SCREENS = ["prejoin", "meeting", "waiting", "message"];

export function showScreen(name) {
  for (const screen of SCREENS) $(screen).hidden = screen !== name;
  $("app").dataset.screen = name;
}

/** Reflect the local mute state on every mic/camera button (pre-join and meeting). */
export function setMediaButtons({ audioMuted, videoMuted, hasAudio, hasVideo }) {
  for (const button of document.querySelectorAll('[data-action="toggle-mic"]')) {
    button.dataset.off = String(audioMuted);
    button.disabled = !hasAudio;
    button.setAttribute("aria-label", !hasAudio ? "No microphone" : audioMuted ? "Unmute microphone" : "Mute microphone");
    button.title = button.getAttribute("aria-label");
  }
  for (const button of document.querySelectorAll('[data-action="toggle-cam"]')) {
    button.dataset.off = String(videoMuted);
    button.disabled = !hasVideo;
    button.setAttribute("aria-label", !hasVideo ? "No camera" : videoMuted ? "Turn on camera" : "Turn off camera");
    button.title = button.getAttribute("aria-label");
  }
}

export function setMeetingTitle(title) {
  $("meeting-title").textContent = title;
  $("prejoin-meeting-title").textContent = title;
  $("waiting-meeting-title").textContent = title;
  document.title = `${title} · Townhall`;
}

export function setParticipantCount(count) {
  $("participant-count-value").textContent = String(count);
  $("participant-count").title = `${count} participant${count === 1 ? "" : "s"}`;
}

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  connected: "Live",
  disconnected: "Reconnecting…",
  failed: "Connection problem",
};

/** The banner over the stage while the session rejoins the meeting by itself. */
export function setReconnectBanner(visible) {
  $("reconnect-banner").hidden = !visible;
}

export function setConnectionState(state) {
  const pill = $("connection-state");
  pill.dataset.state = state;
  pill.textContent = CONNECTION_LABELS[state] || state;
}

// ---- pre-join ---------------------------------------------------------------

export function setPreview(stream, { videoMuted, audioMuted, name }) {
  const video = $("preview-video");
  if (video.srcObject !== stream) video.srcObject = stream;
  const tile = video.closest(".tile");
  const hasVideo = Boolean(stream && stream.getVideoTracks().length);
  tile.dataset.videoMuted = String(videoMuted || !hasVideo);
  tile.dataset.audioMuted = String(audioMuted);
  $("preview-initials").textContent = initials(name);
  tile.style.setProperty("--avatar-hue", hueFor(name || "you"));
}

export function setPreviewNotice(text) {
  const notice = $("preview-notice");
  notice.textContent = text || "";
  notice.hidden = !text;
}

export function setJoinBusy(busy) {
  const button = $("join-button");
  button.disabled = busy;
  button.textContent = busy ? "Joining…" : "Join";
  $("name-input").disabled = busy;
  button.setAttribute("aria-busy", String(busy));
}

export function showJoinError(message) {
  const error = $("join-error");
  const text = String(message || "");
  error.textContent = text && text[0].toUpperCase() + text.slice(1); // server messages start lower-case
  error.hidden = !message;
}

// ---- waiting room ------------------------------------------------------------

/** The lobby screen: our own preview while a host decides. */
export function showWaiting({ stream, name, videoMuted }) {
  setWaitingPreview(stream, { name, videoMuted });
  setWaitingDetail("");
  $("waiting-cancel").disabled = false;
  showScreen("waiting");
  $("waiting-heading").focus();
}

export function setWaitingPreview(stream, { name, videoMuted }) {
  const video = $("waiting-video");
  if (video.srcObject !== stream) video.srcObject = stream;
  const tile = video.closest(".tile");
  tile.dataset.videoMuted = String(videoMuted || !(stream && stream.getVideoTracks().length));
  $("waiting-initials").textContent = initials(name);
  tile.style.setProperty("--avatar-hue", hueFor(name || "you"));
}

export function setWaitingDetail(text) {
  $("waiting-detail").textContent = text || "You will join automatically as soon as a host admits you.";
}

// ---- tiles ----------------------------------------------------------------------

const ICON_MIC_OFF =
  '<svg class="icon" aria-hidden="true"><use href="#i-mic-off"/></svg>';

/** One participant's (or one screen share's) place in the grid. */
class Tile {
  constructor(key, { participantId, source, isSelf }) {
    this.key = key;
    this.isSelf = isSelf;
    this.videoTrack = null;
    this.audioTrack = null;

    const el = document.createElement("div");
    el.className = "tile";
    el.setAttribute("role", "listitem");
    el.dataset.participantId = participantId;
    el.dataset.source = source;
    el.dataset.self = String(isSelf);
    el.dataset.videoReady = "false";
    el.style.setProperty("--avatar-hue", hueFor(participantId));

    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the tile's <audio>, never our own
    video.addEventListener("loadeddata", () => this.markVideoReady());
    video.addEventListener("resize", () => this.markVideoReady());

    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    this.initialsEl = document.createElement("span");
    this.initialsEl.className = "avatar-initials";
    avatar.append(this.initialsEl);

    const label = document.createElement("div");
    label.className = "tile-label";
    this.mutedEl = document.createElement("span");
    this.mutedEl.className = "muted-indicator";
    this.mutedEl.setAttribute("role", "img");
    this.mutedEl.setAttribute("aria-label", "Microphone muted");
    this.mutedEl.innerHTML = ICON_MIC_OFF;
    this.nameEl = document.createElement("span");
    this.nameEl.className = "tile-name";
    label.append(this.mutedEl, this.nameEl);

    el.append(video, avatar, label);
    this.el = el;
    this.video = video;
    this.audio = null;
  }

  update({ name, audioMuted, videoMuted }) {
    const el = this.el;
    el.dataset.name = name;
    const screen = el.dataset.source === "screen";
    const shown = this.isSelf ? (screen ? "Your screen" : `${name} (you)`) : screen ? `${name}'s screen` : name;
    if (this.nameEl.textContent !== shown) this.nameEl.textContent = shown;
    this.initialsEl.textContent = initials(name);
    el.dataset.audioMuted = String(Boolean(audioMuted));
    el.dataset.videoMuted = String(Boolean(videoMuted) || !this.videoTrack);
    el.setAttribute(
      "aria-label",
      `${shown}${audioMuted ? ", microphone muted" : ""}${videoMuted || !this.videoTrack ? ", camera off" : ""}`,
    );
  }

  markVideoReady() {
    if (this.video.videoWidth > 0) this.el.dataset.videoReady = "true";
  }

  setVideoTrack(track) {
    if (track === this.videoTrack) return;
    this.videoTrack = track;
    this.el.dataset.videoReady = "false";
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.video.play().catch(() => {}); // muted video: autoplay is allowed
  }

  /** Attach remote audio; resolves false when the browser blocks autoplay. */
  setAudioTrack(track, sink) {
    if (track === this.audioTrack) return Promise.resolve(true);
    this.audioTrack = track;
    if (!track) {
      if (this.audio) this.audio.srcObject = null;
      return Promise.resolve(true);
    }
    if (!this.audio) {
      this.audio = document.createElement("audio");
      this.audio.autoplay = true;
      this.audio.dataset.participantId = this.el.dataset.participantId;
      sink.append(this.audio);
    }
    this.audio.srcObject = new MediaStream([track]);
    return this.audio.play().then(
      () => true,
      (error) => error?.name !== "NotAllowedError",
    );
  }

  setSpeaking(speaking) {
    const value = String(Boolean(speaking));
    if (this.el.dataset.speaking !== value) this.el.dataset.speaking = value;
  }

  remove() {
    this.video.srcObject = null;
    if (this.audio) {
      this.audio.srcObject = null;
      this.audio.remove();
    }
    this.el.remove();
  }
}

/** Chooses columns so that 16:9 tiles are as large as the stage allows. */
export function bestLayout(count, width, height, gap = TILE_GAP_PX) {
  let best = { columns: 1, rows: Math.max(count, 1), tileWidth: 0 };
  for (let columns = 1; columns <= Math.max(count, 1); columns += 1) {
    const rows = Math.ceil(count / columns);
    const tileWidth = Math.min(
      (width - gap * (columns - 1)) / columns,
      ((height - gap * (rows - 1)) / rows) * TILE_ASPECT,
    );
    if (tileWidth > best.tileWidth + 0.5) best = { columns, rows, tileWidth };
  }
  return best;
}

export class TileGrid {
  constructor() {
    this.grid = $("grid");
    this.stage = $("stage");
    this.sink = $("audio-sink");
    this.tiles = new Map();
    this.onAudioBlocked = null;
    new ResizeObserver(() => this.layout()).observe(this.stage);
  }

  /** Create or update a tile; `key` is the participant id, plus ":screen" for a share. */
  upsert(key, { participantId, source = "camera", isSelf = false, name, audioMuted, videoMuted, videoTrack, audioTrack }) {
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = new Tile(key, { participantId, source, isSelf });
      this.tiles.set(key, tile);
      if (isSelf) this.grid.prepend(tile.el);
      else this.grid.append(tile.el);
      this.layout();
    }
    tile.setVideoTrack(videoTrack || null);
    if (!isSelf) {
      tile.setAudioTrack(audioTrack || null, this.sink).then((played) => {
        if (!played) this.onAudioBlocked?.();
      });
    }
    tile.update({ name, audioMuted, videoMuted });
    return tile;
  }

  remove(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.remove();
    this.tiles.delete(key);
    this.layout();
  }

  keys() {
    return [...this.tiles.keys()];
  }

  get(key) {
    return this.tiles.get(key);
  }

  clear() {
    for (const key of this.keys()) this.remove(key);
  }

  /** Retry every remote <audio> after a user gesture lifted the autoplay block. */
  resumeAudio() {
    for (const tile of this.tiles.values()) tile.audio?.play().catch(() => {});
  }

  layout() {
    const count = this.tiles.size;
    const style = getComputedStyle(this.stage);
    const width = this.stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = this.stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    if (!count || !width || !height) return;
    const { columns, tileWidth } = bestLayout(count, width, height);
    const size = Math.max(Math.floor(tileWidth), 120);
    this.grid.style.setProperty("--tile-width", `${size}px`);
    this.grid.style.setProperty("--grid-width", `${columns * size + (columns - 1) * TILE_GAP_PX}px`);
    this.grid.dataset.count = String(count);
    this.grid.dataset.columns = String(columns);
  }
}

// ---- feedback -----------------------------------------------------------------

export function toast(text, { tone = "info", timeoutMs = 3500 } = {}) {
  const item = document.createElement("div");
  item.className = "toast";
  item.dataset.tone = tone;
  item.textContent = text;
  $("toasts").append(item);
  setTimeout(() => {
    item.classList.add("toast--leaving");
    setTimeout(() => item.remove(), 300);
  }, timeoutMs);
}

/** Say something to screen readers only (what is already on screen, e.g. the knock card). */
export function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

const SPEAKER_ANNOUNCE_GAP_MS = 5000;

/**
 * Tells screen readers, politely, who started speaking: only when the speaker
 * is someone new, and at most once per few seconds (the latest one wins), so
 * that a lively discussion does not drown out everything else.
 */
export class SpeakerAnnouncer {
  constructor(gapMs = SPEAKER_ANNOUNCE_GAP_MS) {
    this.gapMs = gapMs;
    this.lastName = "";
    this.lastAt = -Infinity;
    this.pending = "";
    this.timer = null;
    this.region = null;
  }

  spoke(name) {
    if (name === this.lastName && !this.pending) return;
    this.pending = name;
    if (this.timer) return;
    const wait = this.lastAt + this.gapMs - performance.now();
    this.timer = setTimeout(() => this.flush(), Math.max(0, wait));
  }

  flush() {
    this.timer = null;
    const name = this.pending;
    this.pending = "";
    if (!name || name === this.lastName) return;
    this.lastName = name;
    this.lastAt = performance.now();
    this.politeRegion().textContent = `${name} is speaking`;
  }

  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = "";
    this.lastName = "";
    if (this.region) this.region.textContent = "";
  }

  politeRegion() {
    if (!this.region) {
      this.region = document.createElement("div");
      this.region.id = "speaker-announcer";
      this.region.className = "visually-hidden";
      this.region.setAttribute("aria-live", "polite");
      document.body.append(this.region);
    }
    return this.region;
  }
}

/** Drop every toast (they belong to the screen being left). */
export function clearToasts() {
  $("toasts").replaceChildren();
}

const MESSAGE_ICONS = {
  left: "#i-leave",
  removed: "#i-alert",
  lost: "#i-alert",
  denied: "#i-block",
  ended: "#i-power",
  waiting: "#i-hourglass",
};

/** The full-page message shown after leaving, removal or a lost connection. */
export function showMessage({ kind, heading, detail, canRejoin = true, rejoinLabel = "Rejoin" }) {
  const screen = $("message");
  screen.dataset.kind = kind;
  $("message-icon").innerHTML = `<svg class="icon"><use href="${MESSAGE_ICONS[kind] || "#i-alert"}"/></svg>`;
  $("message-heading").textContent = heading;
  $("message-detail").textContent = detail || "";
  $("rejoin-button").hidden = !canRejoin;
  $("rejoin-button").textContent = rejoinLabel;
  showScreen("message");
  $("message-heading").focus();
}

export function setEnableAudioVisible(visible) {
  $("enable-audio").hidden = !visible;
}

/** Whether we are a host: the role pill and the host-only controls. */
export function setHostControls(isHost) {
  $("role-pill").hidden = !isHost;
  $("end-button").hidden = !isHost;
  $("rooms-button").hidden = !isHost;
}

/** A count on a control-bar button; hidden at zero. */
export function setBadge(id, count, label) {
  const badge = $(id);
  badge.hidden = !count;
  badge.textContent = count > 99 ? "99+" : String(count || "");
  const button = badge.closest("button");
  const base = button.dataset.label || button.getAttribute("aria-label");
  button.dataset.label = base;
  button.setAttribute("aria-label", count ? `${base}, ${count} ${label}` : base);
}

/** m:ss (or h:mm:ss) for a countdown. */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** Ask a yes/no question in a modal dialog; resolves true when confirmed. */
export function confirmDialog({ title, detail, confirmLabel = "OK", tone = "danger" }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-detail").textContent = detail || "";
  const ok = $("confirm-ok");
  ok.textContent = confirmLabel;
  ok.className = `btn btn-md ${tone === "danger" ? "btn-danger" : "btn-primary"}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}
