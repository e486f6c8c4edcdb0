// Townhall web client: the entry point. It owns local media and the flow
// between screens (pre-join -> meeting -> message); session.js speaks to the
// server, peers.js holds the peer connections, ui.js draws the page.

import { Session } from "./session.js";
import * as ui from "./ui.js";

const VIDEO_CONSTRAINTS = { width: 640, height: 360 };
const SPEAKING_LEVEL = 0.04; // RFC 6464 level above which a tile lights up (0..1)
const SPEAKING_POLL_MS = 300;
const RECONNECT_DELAY_MS = 1000;
const NAME_KEY = "townhall.name";

/** Our camera and microphone, and whether each is muted. */
class LocalMedia {
  constructor() {
    this.stream = null;
    this.audioMuted = false;
    this.videoMuted = false;
    this.problem = "";
  }

  get audioTrack() {
    return this.stream?.getAudioTracks()[0] || null;
  }

  get videoTrack() {
    return this.stream?.getVideoTracks()[0] || null;
  }

  /** Get camera and microphone, falling back to either alone, then to nothing. */
  async acquire() {
    if (this.stream && this.stream.getTracks().some((track) => track.readyState === "live")) return this.stream;
    this.problem = "";
    if (!navigator.mediaDevices?.getUserMedia) {
      this.problem = "Camera and microphone need a secure (https) page.";
      this.stream = new MediaStream();
      return this.stream;
    }
    let lastError = null;
    for (const constraints of [
      { audio: true, video: VIDEO_CONSTRAINTS },
      { audio: true, video: false },
      { audio: false, video: VIDEO_CONSTRAINTS },
    ]) {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (!constraints.video) this.problem = "No camera available: others will see your initials.";
        if (!constraints.audio) this.problem = "No microphone available: others will not hear you.";
        break;
      } catch (error) {
        lastError = error;
        if (error?.name === "NotAllowedError") break; // asking again will not help
      }
    }
    if (!this.stream) {
      this.stream = new MediaStream();
      this.problem =
        lastError?.name === "NotAllowedError"
          ? "Camera and microphone are blocked. You can still join to watch and listen."
          : "No camera or microphone found. You can still join to watch and listen.";
    }
    this.apply();
    return this.stream;
  }

  apply() {
    if (this.audioTrack) this.audioTrack.enabled = !this.audioMuted;
    if (this.videoTrack) this.videoTrack.enabled = !this.videoMuted;
  }

  setMuted(kind, muted) {
    if (kind === "audio") this.audioMuted = muted;
    else this.videoMuted = muted;
    this.apply();
  }

  /** Release the devices (the camera light goes off). */
  stop() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
  }
}

/** The meeting id from /m/{meeting_id}. */
function meetingIdFromPath(pathname) {
  const parts = pathname.split("/").filter(Boolean);
  const index = parts.indexOf("m");
  return index >= 0 && parts[index + 1] ? decodeURIComponent(parts[index + 1]) : "";
}

/** The title the server put in the page, else one made from the id. */
function defaultTitle(meetingId) {
  const served = document.querySelector('meta[name="townhall-meeting-title"]')?.content;
  if (served) return served;
  return meetingId ? `Meeting ${meetingId.slice(0, 8)}` : "Meeting";
}

class App {
  constructor() {
    this.meetingId = meetingIdFromPath(location.pathname);
    this.media = new LocalMedia();
    this.session = null;
    this.grid = new ui.TileGrid();
    this.grid.onAudioBlocked = () => ui.setEnableAudioVisible(true);
    this.name = "";
    this.phase = "prejoin";
    this.lastEnd = null;
    this.speakingTimer = null;
  }

  async start() {
    ui.setMeetingTitle(defaultTitle(this.meetingId));
    const nameInput = document.getElementById("name-input");
    const params = new URLSearchParams(location.search);
    nameInput.value = params.get("name") || localStorage.getItem(NAME_KEY) || "";
    nameInput.addEventListener("input", () => this.refreshPreview());
    document.getElementById("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.join(nameInput.value.trim());
    });
    for (const button of document.querySelectorAll('[data-action="toggle-mic"]')) {
      button.addEventListener("click", () => this.toggle("audio"));
    }
    for (const button of document.querySelectorAll('[data-action="toggle-cam"]')) {
      button.addEventListener("click", () => this.toggle("video"));
    }
    document.getElementById("leave-button").addEventListener("click", () => this.session?.leave());
    document.getElementById("rejoin-button").addEventListener("click", () => this.rejoin());
    document.getElementById("copy-link").addEventListener("click", () => this.copyLink());
    document.getElementById("enable-audio").addEventListener("click", () => {
      this.grid.resumeAudio();
      ui.setEnableAudioVisible(false);
    });
    window.addEventListener("pagehide", () => this.session?.abandon());
    ui.showScreen("prejoin");
    if (!this.meetingId) {
      ui.showJoinError("This link has no meeting in it. Ask the host for the full join link.");
      document.getElementById("join-button").disabled = true;
    }
    await this.preparePreview();
    if (!this.meetingId) document.getElementById("join-button").disabled = true;
    nameInput.focus();
  }

  async preparePreview() {
    await this.media.acquire();
    ui.setPreviewNotice(this.media.problem);
    this.refreshPreview();
  }

  refreshPreview() {
    const name = document.getElementById("name-input").value.trim();
    ui.setPreview(this.media.stream, { videoMuted: this.media.videoMuted, audioMuted: this.media.audioMuted, name });
    ui.setMediaButtons({
      audioMuted: this.media.audioMuted,
      videoMuted: this.media.videoMuted,
      hasAudio: Boolean(this.media.audioTrack),
      hasVideo: Boolean(this.media.videoTrack),
    });
  }

  toggle(kind) {
    const muted = kind === "audio" ? !this.media.audioMuted : !this.media.videoMuted;
    this.media.setMuted(kind, muted);
    this.session?.setMuted(kind, muted);
    this.refreshPreview();
    if (this.phase === "meeting") this.render();
  }

  async join(name) {
    if (!name) {
      ui.showJoinError("Please enter your name.");
      document.getElementById("name-input").focus();
      return;
    }
    if (this.phase === "joining") return;
    this.name = name;
    localStorage.setItem(NAME_KEY, name);
    ui.showJoinError("");
    ui.setJoinBusy(true);
    this.phase = "joining";
    await this.media.acquire();
    const session = new Session({ meetingId: this.meetingId, name, media: this.media, view: this.viewFor(() => session) });
    this.session = session;
    try {
      await session.start();
    } catch (error) {
      if (this.session !== session) return;
      console.error("townhall: join failed", error);
      this.session = null;
      this.phase = "prejoin";
      ui.setJoinBusy(false);
      ui.showScreen("prejoin");
      this.refreshPreview();
      ui.showJoinError(error?.message || "Could not join the meeting.");
    }
  }

  /** The callbacks one session reports to; stale sessions are ignored. */
  viewFor(current) {
    const live = () => this.session === current();
    return {
      render: () => {
        if (!live()) return;
        if (this.phase !== "meeting") this.enterMeeting();
        this.render();
      },
      participantJoined: (participant) => live() && ui.toast(`${participant.name || "Someone"} joined`),
      participantLeft: (participant) => live() && ui.toast(`${participant.name || "Someone"} left`),
      connectionState: (state) => live() && ui.setConnectionState(state),
      notice: (text) => live() && ui.toast(text, { tone: "warning", timeoutMs: 6000 }),
      ended: (end) => live() && this.ended(end),
    };
  }

  enterMeeting() {
    this.phase = "meeting";
    const join = this.session.joinResponse || {};
    const title = join.meeting_title || join.meeting?.title || join.title;
    if (title) ui.setMeetingTitle(title);
    ui.setConnectionState("connecting");
    ui.setJoinBusy(false);
    ui.showScreen("meeting");
    this.grid.layout();
    this.startSpeakingWatch();
  }

  /** Draw every tile from the session's roster, its routes and our local media. */
  render() {
    const session = this.session;
    if (!session || !session.participantId) return;
    const keep = new Set([session.participantId]);
    this.grid.upsert(session.participantId, {
      participantId: session.participantId,
      isSelf: true,
      name: this.name,
      audioMuted: this.media.audioMuted || !this.media.audioTrack,
      videoMuted: this.media.videoMuted,
      videoTrack: this.media.videoTrack,
    });
    const media = session.mediaByTile();
    for (const participant of session.participants.values()) {
      const id = participant.participant_id;
      const camera = media.get(id) || {};
      keep.add(id);
      this.grid.upsert(id, {
        participantId: id,
        name: participant.name || "Guest",
        audioMuted: Boolean(participant.audio_muted),
        videoMuted: Boolean(participant.video_muted),
        videoTrack: camera.video,
        audioTrack: camera.audio,
      });
      const screen = media.get(`${id}:screen`);
      if (screen) {
        keep.add(`${id}:screen`);
        this.grid.upsert(`${id}:screen`, {
          participantId: id,
          source: "screen",
          name: participant.name || "Guest",
          audioMuted: false,
          videoMuted: false,
          videoTrack: screen.video,
          audioTrack: screen.audio,
        });
      }
    }
    for (const key of this.grid.keys()) if (!keep.has(key)) this.grid.remove(key);
    ui.setParticipantCount(1 + session.participants.size);
    ui.setMediaButtons({
      audioMuted: this.media.audioMuted,
      videoMuted: this.media.videoMuted,
      hasAudio: Boolean(this.media.audioTrack),
      hasVideo: Boolean(this.media.videoTrack),
    });
  }

  /** Light up the tiles of whoever is talking, from RFC 6464 levels (no decoding). */
  startSpeakingWatch() {
    clearInterval(this.speakingTimer);
    this.speakingTimer = setInterval(async () => {
      const session = this.session;
      if (!session || session.ended) return;
      for (const route of session.routes) {
        if (route.kind !== "audio") continue;
        const [source] = route.receiver.getSynchronizationSources();
        const recent = source && performance.timeOrigin + performance.now() - source.timestamp < 1000;
        const key = route.source === "screen" ? `${route.participant_id}:screen` : route.participant_id;
        this.grid.get(key)?.setSpeaking(recent && source.audioLevel > SPEAKING_LEVEL);
      }
      if (session.publisher && session.participantId) {
        const level = this.media.audioMuted ? 0 : await session.publisher.audioLevel().catch(() => 0);
        this.grid.get(session.participantId)?.setSpeaking(level > SPEAKING_LEVEL);
      }
    }, SPEAKING_POLL_MS);
  }

  ended({ kind, reason, detail }) {
    clearInterval(this.speakingTimer);
    this.lastEnd = { kind, reason };
    this.phase = "ended";
    this.grid.clear();
    ui.setEnableAudioVisible(false);
    if (kind === "reconnect") {
      ui.showMessage({ kind: "waiting", heading: "Reconnecting…", detail: `The meeting is ${reason}.`, canRejoin: false });
      setTimeout(() => this.rejoin(), RECONNECT_DELAY_MS);
      return;
    }
    this.media.stop();
    if (kind === "left") {
      ui.showMessage({ kind, heading: "You left the meeting", detail: "Rejoin whenever you are ready." });
    } else if (kind === "removed") {
      ui.showMessage({
        kind,
        heading: `Removed: ${String(reason).replaceAll("_", " ")}`,
        detail: "The meeting server ended your session.",
      });
    } else {
      ui.showMessage({
        kind: "lost",
        heading: "Connection lost",
        detail: detail || "The connection to the meeting server dropped.",
      });
    }
  }

  async rejoin() {
    this.session = null;
    this.phase = "prejoin";
    ui.setJoinBusy(true);
    ui.showMessage({ kind: "waiting", heading: "Rejoining…", detail: "", canRejoin: false });
    await this.join(this.name);
  }

  async copyLink() {
    const link = `${location.origin}${location.pathname}`;
    try {
      await navigator.clipboard.writeText(link);
      ui.toast("Invite link copied");
    } catch {
      ui.toast(link, { timeoutMs: 8000 });
    }
  }
}

/** Read-only debugging state for people and tests; the page never reads it. */
function exposeDebugState(app) {
  const state = {};
  Object.defineProperties(state, {
    phase: { get: () => app.phase, enumerable: true },
    meetingId: { get: () => app.meetingId, enumerable: true },
    participantId: { get: () => app.session?.participantId ?? null, enumerable: true },
    name: { get: () => app.name, enumerable: true },
    participants: {
      get: () => [...(app.session?.participants.values() || [])].map((p) => ({ ...p })),
      enumerable: true,
    },
    tracks: {
      get: () => (app.session?.routes || []).map(({ track, receiver, ...row }) => ({ ...row, trackId: track.id })),
      enumerable: true,
    },
    publishPc: { get: () => app.session?.publisher?.pc ?? null },
    subscribePc: { get: () => app.session?.subscriber?.pc ?? null },
    negotiations: { get: () => app.session?.subscriber?.negotiations ?? 0, enumerable: true },
    localStream: { get: () => app.media.stream },
    audioMuted: { get: () => app.media.audioMuted, enumerable: true },
    videoMuted: { get: () => app.media.videoMuted, enumerable: true },
    lastEnd: { get: () => app.lastEnd, enumerable: true },
    signalingLog: { get: () => app.session?.signaling?.log.slice() ?? [] },
  });
  window.townhall = Object.freeze(state);
}

const app = new App();
exposeDebugState(app);
app.start().catch((error) => {
  console.error("townhall: start failed", error);
  ui.showJoinError(error?.message || "The page failed to start.");
});
