// Townhall web client: the entry point. It owns the flow between screens
// (pre-join -> waiting room -> meeting -> message) and wires the parts:
// admission.js gets us in, session.js speaks to the SFU, tools.js runs the
// side panels and host tools, ui.js draws the rest.

import { JoinError, requestJoin, waitForAdmission } from "./admission.js";
import { MeetingApi } from "./api.js";
import { LocalMedia, captureScreen } from "./media.js";
import { Session } from "./session.js";
import { MeetingTools } from "./tools.js";
import * as ui from "./ui.js";

// Our own tile lights up from our microphone's level (no round trip to the
// SFU); everyone else's from the SFU's `speaking` frames (RFC 6464 levels).
const SPEAKING_LEVEL = 0.04; // local level above which our tile lights up (0..1)
const SPEAKING_POLL_MS = 300;
const NAME_KEY = "townhall.name";

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
    this.invite = new URLSearchParams(location.search).get("invite") || "";
    this.media = new LocalMedia();
    this.session = null;
    this.api = null; // MeetingApi with our control token, once a join answered
    this.grid = new ui.TileGrid();
    this.grid.onAudioBlocked = () => ui.setEnableAudioVisible(true);
    this.name = "";
    this.phase = "prejoin";
    this.lastEnd = null;
    this.speakingTimer = null;
    this.speakerAnnouncer = new ui.SpeakerAnnouncer();
    this.lobbyAbort = null;
    this.waitingGrant = null;
    this.tools = new MeetingTools({
      session: () => this.session,
      api: () => this.api,
      roster: () => this.roster(),
      onLayout: () => this.grid.layout(),
    });
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
    const on = (id, handler) => document.getElementById(id).addEventListener("click", handler);
    on("leave-button", () => this.session?.leave());
    on("screen-button", () => this.toggleScreenShare());
    on("rejoin-button", () => this.rejoin());
    on("waiting-cancel", () => this.cancelWaiting());
    on("copy-link", () => this.copyLink());
    on("enable-audio", () => {
      this.grid.resumeAudio();
      ui.setEnableAudioVisible(false);
    });
    window.addEventListener("pagehide", () => {
      this.session?.abandon();
      if (this.phase === "waiting") this.cancelWaiting();
    });
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
    if (this.phase === "waiting") ui.setWaitingPreview(this.media.stream, { videoMuted: this.media.videoMuted, name: this.name });
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

  /** Ask to join; wait in the lobby when the meeting has one; then connect. */
  async join(name) {
    if (!name) {
      ui.showJoinError("Please enter your name.");
      document.getElementById("name-input").focus();
      return;
    }
    if (this.phase === "joining" || this.phase === "waiting") return;
    this.name = name;
    localStorage.setItem(NAME_KEY, name);
    ui.showJoinError("");
    ui.setJoinBusy(true);
    this.phase = "joining";
    await this.media.acquire();
    let grant;
    try {
      grant = await requestJoin(this.meetingId, name, this.invite);
      this.api = new MeetingApi(this.meetingId, grant.control_token);
      if (grant.meeting_title) ui.setMeetingTitle(grant.meeting_title);
      if (grant.status === "waiting") grant = await this.waitInLobby(grant);
      if (!grant) return; // cancelled
    } catch (error) {
      this.joinFailed(error);
      return;
    }
    await this.connect(grant);
  }

  async waitInLobby(grant) {
    this.phase = "waiting";
    this.waitingGrant = grant;
    this.lobbyAbort = new AbortController();
    ui.showWaiting({ stream: this.media.stream, name: this.name, videoMuted: this.media.videoMuted });
    try {
      const admitted = await waitForAdmission(grant, {
        signal: this.lobbyAbort.signal,
        onRetry: () => ui.setWaitingDetail("Lost touch with the meeting server; trying again…"),
      });
      this.waitingGrant = null;
      ui.setWaitingDetail("You're in! Joining…");
      return admitted;
    } catch (error) {
      this.waitingGrant = null;
      if (this.lobbyAbort?.signal.aborted) return null;
      throw error;
    } finally {
      this.lobbyAbort = null;
    }
  }

  /** Leave the lobby: stop waiting, tell the server (best effort), back to the pre-join screen. */
  cancelWaiting() {
    if (this.phase !== "waiting" || !this.lobbyAbort) return;
    const grant = this.waitingGrant;
    this.lobbyAbort.abort();
    if (grant) this.api?.leaveLobby(grant.participant_id).catch(() => {});
    this.phase = "prejoin";
    ui.setJoinBusy(false);
    ui.showScreen("prejoin");
    this.refreshPreview();
    document.getElementById("join-button").focus();
  }

  joinFailed(error) {
    console.error("townhall: join failed", error);
    this.session = null;
    if (error instanceof JoinError && error.code === "denied") {
      this.phase = "ended";
      this.lastEnd = { kind: "denied", reason: error.reason || "denied" };
      ui.setJoinBusy(false);
      // Turned away because the meeting ended, not by a host's choice.
      const ended = /\bended\b|deleted/.test(error.reason);
      ui.showMessage(
        ended
          ? { kind: "ended", heading: "The meeting has ended", detail: "", canRejoin: false }
          : {
              kind: "denied",
              heading: "The host did not let you in",
              detail: "You can ask to join again, or contact the host.",
              rejoinLabel: "Ask to join again",
            },
      );
      return;
    }
    this.phase = "prejoin";
    ui.setJoinBusy(false);
    ui.showScreen("prejoin");
    this.refreshPreview();
    ui.showJoinError(error?.message || "Could not join the meeting.");
  }

  async connect(grant) {
    this.phase = "joining";
    const session = new Session({ grant, media: this.media, view: this.viewFor(() => session) });
    this.session = session;
    this.tools.reset();
    try {
      await session.start();
    } catch (error) {
      if (this.session !== session) return;
      this.joinFailed(error);
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
      chatMessage: (message) => live() && this.tools.chat.add(message),
      chatError: (error) => live() && this.tools.chatError(error),
      lobbyChanged: (waiting) => live() && this.tools.lobbyChanged(waiting),
      roomChanged: (room, closesAt) => live() && this.tools.roomChanged(room, closesAt),
      permissionsChanged: (role, permissions, options) =>
        live() && this.tools.permissionsChanged(role, permissions, options),
      moderated: (message) => live() && this.moderated(message),
      screenShareEnded: () => live() && this.setScreenButton(false),
      recordingJoined: (recording) => live() && this.tools.recordingJoined(recording),
      recordingChanged: (message) => live() && this.tools.recordingChanged(message),
      recordingRefused: (error) => live() && this.tools.recordingRefused(error),
      caption: (message) => live() && this.tools.caption(message),
      speakingChanged: (participantId, speaking) => live() && this.speakingChanged(participantId, speaking),
      reconnecting: (reason) => live() && this.reconnecting(reason),
      reconnected: (info) => live() && this.reconnected(info),
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
    if (session.screenTrack) {
      keep.add(`${session.participantId}:screen`);
      this.grid.upsert(`${session.participantId}:screen`, {
        participantId: session.participantId,
        source: "screen",
        isSelf: true,
        name: this.name,
        videoTrack: session.screenTrack,
      });
    }
    const media = session.mediaByTile();
    for (const participant of session.visibleParticipants()) {
      const id = participant.participant_id;
      const camera = media.get(id) || {};
      keep.add(id);
      this.grid
        .upsert(id, {
          participantId: id,
          name: participant.name || "Guest",
          audioMuted: Boolean(participant.audio_muted),
          videoMuted: Boolean(participant.video_muted),
          videoTrack: camera.video,
          audioTrack: camera.audio,
        })
        .setSpeaking(session.speaking.has(id));
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
    ui.setParticipantCount(1 + session.visibleParticipants().length);
    ui.setMediaButtons({
      audioMuted: this.media.audioMuted,
      videoMuted: this.media.videoMuted,
      hasAudio: Boolean(this.media.audioTrack),
      hasVideo: Boolean(this.media.videoTrack),
    });
    this.tools.render();
  }

  /** Everyone in the meeting, ourselves included, as participant rows. */
  roster() {
    const session = this.session;
    if (!session) return [];
    const self = {
      participant_id: session.participantId,
      name: this.name,
      role: session.role,
      audio_muted: this.media.audioMuted || !this.media.audioTrack,
      video_muted: this.media.videoMuted || !this.media.videoTrack,
      room: session.room?.id ?? null,
    };
    return [self, ...session.participants.values()];
  }

  /** A host muted us: mute here too (the track and the server's record) and say who. */
  moderated(message) {
    if (message.action !== "mute") return;
    const kind = message.kind === "video" ? "video" : "audio";
    this.media.setMuted(kind, true);
    this.session?.setMuted(kind, true);
    this.refreshPreview();
    this.render();
    // `by` names the host who did it; a server that does not know says "host" or "a host".
    const by = message.by && !/^(a )?host$/i.test(message.by) ? message.by : "";
    const text =
      kind === "audio"
        ? by ? `Muted by ${by}` : "A host muted your microphone"
        : by ? `Your camera was turned off by ${by}` : "A host turned off your camera";
    ui.toast(text, { timeoutMs: 5000 });
  }

  async toggleScreenShare() {
    const session = this.session;
    if (!session) return;
    if (session.screenTrack) {
      await session.stopScreenShare();
      return;
    }
    let track;
    try {
      track = await captureScreen();
    } catch (error) {
      ui.toast(`Could not share your screen: ${error.message}`, { tone: "warning" });
      return;
    }
    if (!track || this.session !== session) {
      track?.stop();
      return;
    }
    this.setScreenButton(true);
    try {
      await session.startScreenShare(track);
      ui.toast("You are sharing your screen");
    } catch (error) {
      this.setScreenButton(false);
      ui.toast(`Could not share your screen: ${error.message}`, { tone: "warning", timeoutMs: 6000 });
    }
  }

  setScreenButton(sharing) {
    const button = document.getElementById("screen-button");
    button.setAttribute("aria-pressed", String(sharing));
    button.dataset.active = String(sharing);
    button.setAttribute("aria-label", sharing ? "Stop sharing your screen" : "Share your screen");
    button.title = button.getAttribute("aria-label");
  }

  /** The SFU heard a room-mate start or stop speaking: their camera tile's ring, and a polite word. */
  speakingChanged(participantId, speaking) {
    if (participantId === this.session?.participantId) return; // our own tile follows our microphone
    this.grid.get(participantId)?.setSpeaking(speaking);
    const participant = this.session?.participants.get(participantId);
    if (speaking && participant) this.speakerAnnouncer.spoke(participant.name || "Guest");
  }

  /** Light up our own tile while our microphone picks up sound. */
  startSpeakingWatch() {
    clearInterval(this.speakingTimer);
    this.speakingTimer = setInterval(async () => {
      const session = this.session;
      if (!session || session.ended) return;
      if (session.publisher && session.participantId) {
        const level = this.media.audioMuted ? 0 : await session.publisher.audioLevel().catch(() => 0);
        this.grid.get(session.participantId)?.setSpeaking(level > SPEAKING_LEVEL);
      }
    }, SPEAKING_POLL_MS);
  }

  /** The server went away: say so over the stage while the session rejoins by itself. */
  reconnecting(reason) {
    console.info(`townhall: reconnecting: ${reason}`);
    ui.clearToasts(); // they were about the connection that is gone
    ui.setReconnectBanner(true);
    ui.setConnectionState("disconnected");
    ui.setEnableAudioVisible(false);
  }

  reconnected({ durationMs }) {
    ui.setReconnectBanner(false);
    ui.toast(`Reconnected after ${(durationMs / 1000).toFixed(1)} s`);
  }

  ended({ kind, reason, detail }) {
    ui.setReconnectBanner(false);
    clearInterval(this.speakingTimer);
    this.speakerAnnouncer.reset();
    this.lastEnd = { kind, reason };
    this.phase = "ended";
    this.grid.clear();
    this.tools.close();
    this.setScreenButton(false);
    ui.clearToasts();
    ui.setEnableAudioVisible(false);
    this.media.stop();
    if (kind === "left") {
      ui.showMessage({ kind, heading: "You left the meeting", detail: "Rejoin whenever you are ready." });
    } else if (kind === "removed") {
      ui.showMessage(removalMessage(reason));
    } else {
      ui.showMessage({
        kind: "lost",
        heading: "Connection lost",
        detail: detail || "The connection to the meeting server dropped.",
        rejoinLabel: "Rejoin",
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

/** The message screen for a session the server ended, by its `bye` reason. */
function removalMessage(reason) {
  const text = String(reason || "").toLowerCase();
  if (/\bended\b|\bdeleted\b|\bclosed\b/.test(text) && !text.includes("removed")) {
    return {
      kind: "ended",
      heading: "The meeting has ended",
      detail: "A host ended the meeting for everyone.",
      canRejoin: false,
    };
  }
  if (text.includes("block")) {
    return {
      kind: "removed",
      heading: "You were removed from the meeting",
      detail: "A host removed you and blocked you from joining again.",
      canRejoin: false,
    };
  }
  if (text.includes("remov") || text.includes("kick")) {
    return {
      kind: "removed",
      heading: "You were removed from the meeting",
      detail: "A host removed you. You can ask to join again.",
      rejoinLabel: "Ask to join again",
    };
  }
  return {
    kind: "removed",
    heading: `Removed: ${String(reason).replaceAll("_", " ")}`,
    detail: "The meeting server ended your session.",
  };
}

// What window.townhall.deliver() may show: drawn on this page and nothing else.
const LOCAL_FRAME_TYPES = new Set(["caption"]);

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
    role: { get: () => app.session?.role ?? null, enumerable: true },
    permissions: { get: () => ({ ...(app.session?.permissions || {}) }), enumerable: true },
    room: { get: () => app.session?.room ?? null, enumerable: true },
    lobby: { get: () => app.tools.lobby.map((person) => ({ ...person })), enumerable: true },
    chat: { get: () => [...app.tools.chat.messages.values()].map((message) => ({ ...message })), enumerable: true },
    sharingScreen: { get: () => Boolean(app.session?.screenTrack), enumerable: true },
    recording: { get: () => (app.tools.recording.recording ? { ...app.tools.recording.recording } : null), enumerable: true },
    captions: { get: () => app.tools.captions.snapshot(), enumerable: true },
    speaking: { get: () => [...(app.session?.speaking || [])], enumerable: true },
    reconnecting: { get: () => Boolean(app.session?.reconnecting), enumerable: true },
    reconnects: { get: () => app.session?.reconnects ?? 0, enumerable: true },
    lastReconnectMs: { get: () => app.session?.lastReconnectMs ?? null, enumerable: true },
    // Shows a frame the server could have sent, on this page only (tests of what
    // the page draws); frames that would change the session's state are refused.
    deliver: {
      value: (message) => {
        if (!LOCAL_FRAME_TYPES.has(message?.type)) throw new Error(`deliver() takes only ${[...LOCAL_FRAME_TYPES]}`);
        app.session?.signaling?.dispatch({ ...message });
      },
    },
  });
  window.townhall = Object.freeze(state);
}

const app = new App();
exposeDebugState(app);
app.start().catch((error) => {
  console.error("townhall: start failed", error);
  ui.showJoinError(error?.message || "The page failed to start.");
});
