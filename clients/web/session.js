// One stay in a meeting: the signaling socket, the publish and subscribe
// connections, the roster, and what the server says about us (role,
// permissions, breakout room). It holds state and tells its view what
// changed; it never touches the DOM. Getting the grant it starts from (join
// request, lobby) is admission.js's job.
//
// When the server goes away without saying `bye` (the socket drops, the
// media connection fails) or sends `reconnect`, the session rejoins by itself
// (reconnect.js): a fresh token from the control plane, a new socket, the same
// camera and microphone published again, everyone else's tracks offered again.

import { Signaling, SignalingError, resolveSignalingUrl } from "./signaling.js";
import { Publisher, Subscriber, toIceServers } from "./peers.js";
import { JoinError } from "./admission.js";
import { RejoinRefused, rejoinWithBackoff } from "./reconnect.js";

const BYE_WAIT_MS = 1000;
// An `error` frame followed this soon by the socket closing was fatal.
const FATAL_ERROR_WINDOW_MS = 5000;
// An `error` this soon after a chat message we sent is about that message.
const CHAT_ERROR_WINDOW_MS = 5000;
const CHAT_ERROR_CODES = new Set(["forbidden", "rate_limited", "too_large", "invalid_message", "not_found"]);
// An `error` this soon after a `record` request, and before any `recording`
// frame, is the answer to it (the SFU refuses with `forbidden`).
const RECORD_ERROR_WINDOW_MS = 10000;

// How long after we are back others' rejoining is still a return, not an arrival.
const RETURN_WINDOW_MS = 30000;

const DEFAULT_PERMISSIONS = { publish: true, subscribe: true, chat: true, screen_share: true, record: false };

/** A breakout room as the server sends it (an id, or {id, name}); null is the main meeting. */
export function normalizeRoom(room) {
  if (!room) return null;
  if (typeof room === "string") return { id: room, name: "" };
  if (typeof room === "object" && typeof room.id === "string") return { id: room.id, name: String(room.name || "") };
  return null;
}

/** The `recording` of `joined` or of a `recording` frame ({recording_id}) as a running recording, or null. */
export function runningRecording(value) {
  if (!value || typeof value !== "object") return null;
  return { recording_id: typeof value.recording_id === "string" ? value.recording_id : "" };
}

/**
 * The view a session reports to. Every method is optional:
 * render(), participantJoined(p), participantLeft(p, reason),
 * connectionState(state), notice(text), ended({kind, reason, detail}),
 * chatMessage(message), chatError(error), lobbyChanged(waiting),
 * roomChanged(room, closesAt), permissionsChanged(role, permissions),
 * moderated({action, kind, by}), screenShareEnded(),
 * recordingJoined(recording), recordingChanged(message), recordingRefused(error),
 * caption(message), speakingChanged(participantId, speaking),
 * reconnecting(reason), reconnected({durationMs, attempts}).
 */
export class Session {
  constructor({ grant, media, view }) {
    this.grant = grant;
    this.meetingId = grant.meeting_id;
    this.name = grant.name;
    this.media = media;
    this.view = view;
    this.participantId = grant.participant_id || null;
    this.role = grant.role || null;
    this.permissions = { ...DEFAULT_PERMISSIONS };
    this.room = null;
    this.closesAt = null;
    this.lobby = [];
    this.joinResponse = grant;
    this.participants = new Map(); // participant_id -> participant (others only)
    this.departed = new Set();
    // Who the SFU hears speaking now (RFC 6464 levels, `speaking` frames); room-mates only.
    this.speaking = new Set();
    this.routes = [];
    this.signaling = null;
    this.publisher = null;
    this.subscriber = null;
    this.screenTrack = null;
    this.iceServers = [];
    this.lastError = null;
    this.lastChatAt = 0;
    this.lastRecordAt = 0;
    this.recording = null; // {recording_id} while the meeting is recorded
    this.leaving = false;
    this.ended = false;
    this.byeSeen = null;
    this.connection = { publish: "new", subscribe: "new" };
    this.reconnecting = false;
    this.reconnects = 0;
    this.lastReconnectMs = null;
    // Who was here before we lost the connection: their coming back is no news.
    this.returning = new Set();
  }

  /** Connect with the grant, then publish. Throws JoinError/SignalingError. */
  async start() {
    try {
      await this.connect();
    } catch (error) {
      this.dispose();
      throw error;
    }
    await this.publish();
  }

  async connect() {
    const grant = this.grant;
    if (!grant.token || !grant.signaling_url) {
      throw new JoinError(grant.status || "not_admitted", grant.message || "The meeting did not let you in yet.");
    }
    this.signaling = new Signaling(resolveSignalingUrl(grant.signaling_url));
    this.registerHandlers();
    const joined = await this.signaling.connect(grant.token);
    if (this.ended) {
      this.signaling.close();
      return;
    }
    this.signaling.onClose = (event) => this.onSocketClosed(event);
    this.participantId = joined.participant_id || this.participantId;
    this.role = joined.role || this.role;
    if (joined.permissions && typeof joined.permissions === "object") {
      this.permissions = { ...DEFAULT_PERMISSIONS, ...joined.permissions };
    }
    this.room = normalizeRoom(joined.room);
    this.recording = runningRecording(joined.recording);
    this.iceServers = toIceServers(joined.ice_servers ?? grant.ice_servers);
    for (const participant of joined.participants || []) this.addParticipant(participant);

    this.subscriber = new Subscriber({
      iceServers: this.iceServers,
      signaling: this.signaling,
      onRoutes: (routes) => {
        this.routes = routes;
        this.view.render?.();
      },
      onConnectionState: (state) => this.setConnectionState("subscribe", state),
      onError: (error) => {
        console.error("townhall: subscribe negotiation failed", error);
        this.view.notice?.("Could not receive the others' media.");
      },
    });
    this.view.render?.();
    this.view.permissionsChanged?.(this.role, this.permissions, { initial: true });
    this.view.recordingJoined?.(this.recording);
    if (this.room) this.view.roomChanged?.(this.room, null);
    this.signaling.resume();
  }

  /** Publish our camera and microphone; `required` (a rejoin): a failure throws, to retry. */
  async publish({ required = false } = {}) {
    if (this.ended) return;
    if (this.media.audioMuted && this.media.audioTrack) this.sendMute("audio", true);
    if (this.media.videoMuted && this.media.videoTrack) this.sendMute("video", true);
    if (this.media.stream && this.media.stream.getTracks().length && this.permissions.publish !== false) {
      this.ensurePublisher();
      try {
        await this.publisher.publish();
      } catch (error) {
        if (required) throw error;
        console.error("townhall: publishing failed", error);
        if (!this.ended) this.view.notice?.("Could not send your camera and microphone.");
      }
    }
  }

  ensurePublisher() {
    if (this.publisher) return this.publisher;
    this.publisher = new Publisher({
      iceServers: this.iceServers,
      stream: this.media.stream || new MediaStream(),
      signaling: this.signaling,
      onConnectionState: (state) => this.setConnectionState("publish", state),
    });
    return this.publisher;
  }

  /** Publish a screen track (source "screen") by renegotiating the publish connection. */
  async startScreenShare(track) {
    if (this.ended) throw new Error("the session has ended");
    this.screenTrack = track;
    track.addEventListener("ended", () => this.stopScreenShare(), { once: true });
    this.view.render?.();
    try {
      await this.ensurePublisher().addScreen(track);
    } catch (error) {
      // Cut short by a lost connection: the rejoin publishes the screen again.
      if (this.reconnecting && this.screenTrack === track) return;
      this.screenTrack = null;
      track.stop();
      this.view.render?.();
      throw error;
    }
  }

  async stopScreenShare() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.view.screenShareEnded?.();
    this.view.render?.();
    if (this.ended) return;
    try {
      await this.publisher?.removeScreen();
    } catch (error) {
      console.error("townhall: stopping the screen share failed", error);
    }
  }

  registerHandlers() {
    this.signaling
      .on("publish-answer", (message) => this.publisher?.applyAnswer(message.sdp))
      .on("subscribe-offer", (message) => this.subscriber?.handleOffer(message))
      .on("participant-joined", (message) => {
        const participant = this.addParticipant(message.participant);
        const returning = participant && this.returning.delete(participant.participant_id);
        if (participant && !returning && this.sameRoom(participant)) this.view.participantJoined?.(participant);
        this.view.render?.();
      })
      .on("participant-updated", (message) => {
        this.addParticipant(message.participant);
        this.view.render?.();
      })
      .on("participant-left", (message) => {
        const participant = this.participants.get(message.participant_id);
        this.participants.delete(message.participant_id);
        this.departed.add(message.participant_id);
        this.setSpeaking(message.participant_id, false);
        if (participant && this.sameRoom(participant)) this.view.participantLeft?.(participant, message.reason);
        this.view.render?.();
      })
      .on("chat", (message) => {
        if (message.message && typeof message.message === "object") this.view.chatMessage?.(message.message);
      })
      .on("lobby", (message) => {
        this.lobby = Array.isArray(message.waiting) ? message.waiting : [];
        this.view.lobbyChanged?.(this.lobby);
      })
      .on("room-changed", (message) => {
        this.room = normalizeRoom(message.room);
        this.closesAt = message.closes_at || null;
        for (const id of [...this.speaking]) this.setSpeaking(id, false); // the new room's speakers come in frames
        this.view.roomChanged?.(this.room, this.closesAt);
        this.view.render?.();
      })
      .on("permissions-changed", (message) => {
        if (message.role) this.role = message.role;
        if (message.permissions && typeof message.permissions === "object") {
          this.permissions = { ...DEFAULT_PERMISSIONS, ...message.permissions };
        }
        if (!this.permissions.screen_share && this.screenTrack) this.stopScreenShare();
        this.view.permissionsChanged?.(this.role, this.permissions);
        this.view.render?.();
      })
      .on("moderation", (message) => this.view.moderated?.(message))
      .on("recording", (message) => {
        this.lastRecordAt = 0;
        this.recording = message.state === "started" ? runningRecording(message) : null;
        this.view.recordingChanged?.(message);
      })
      .on("speaking", (message) => {
        if (typeof message.participant_id === "string") this.setSpeaking(message.participant_id, message.speaking === true);
      })
      .on("caption", (message) => {
        if (typeof message.text === "string") this.view.caption?.(message);
      })
      .on("error", (message) => {
        const now = Date.now();
        this.lastError = { code: message.code, message: message.message || message.code, at: now };
        const aboutRecording = now - this.lastRecordAt < RECORD_ERROR_WINDOW_MS && this.lastRecordAt > this.lastChatAt;
        const aboutChat = CHAT_ERROR_CODES.has(message.code) && now - this.lastChatAt < CHAT_ERROR_WINDOW_MS;
        if (aboutRecording && this.view.recordingRefused) {
          this.lastRecordAt = 0;
          this.view.recordingRefused(this.lastError);
        } else if (aboutChat && this.view.chatError) this.view.chatError(this.lastError);
        else this.view.notice?.(this.lastError.message);
      })
      .on("bye", (message) => {
        if (this.leaving) this.byeSeen?.();
        else this.end("removed", message.reason || "the session ended");
      })
      .on("reconnect", (message) => this.reconnect(message.reason || "the meeting moved to another server"));
  }

  /** Record who speaks; tell the view only when it changed. */
  setSpeaking(participantId, speaking) {
    if (this.speaking.has(participantId) === speaking) return;
    if (speaking) this.speaking.add(participantId);
    else this.speaking.delete(participantId);
    this.view.speakingChanged?.(participantId, speaking);
  }

  /** Whether a remote participant is in our breakout room (or both in the main meeting). */
  sameRoom(participant) {
    return (participant.room ?? null) === (this.room?.id ?? null);
  }

  /** The remote participants we see and hear now (same room as ours). */
  visibleParticipants() {
    return [...this.participants.values()].filter((participant) => this.sameRoom(participant));
  }

  /** Send a chat message to everyone, or privately to one participant; false when offline. */
  sendChat(text, to = null) {
    this.lastChatAt = Date.now();
    return Boolean(this.signaling?.send("chat", to ? { text, to } : { text }));
  }

  /** Ask the server to start or stop recording the meeting; false when offline. */
  requestRecording(action) {
    this.lastRecordAt = Date.now();
    return Boolean(this.signaling?.send("record", { action }));
  }

  /** Add or refresh a remote participant; our own record is ignored (local state rules). */
  addParticipant(participant) {
    if (!participant || typeof participant.participant_id !== "string") return null;
    if (participant.participant_id === this.participantId) return null;
    this.departed.delete(participant.participant_id);
    const known = this.participants.get(participant.participant_id);
    const merged = { joinedAt: Date.now(), ...known, ...participant };
    this.participants.set(participant.participant_id, merged);
    return known ? null : merged;
  }

  /** Routes grouped per tile key: {audio, video} tracks of each participant's camera/mic or screen. */
  mediaByTile() {
    const tiles = new Map();
    for (const route of this.routes) {
      if (this.departed.has(route.participant_id)) continue;
      const participant = this.participants.get(route.participant_id);
      if (participant && !this.sameRoom(participant)) continue;
      const key = route.source === "screen" ? `${route.participant_id}:screen` : route.participant_id;
      const slot = tiles.get(key) || { participantId: route.participant_id, source: route.source === "screen" ? "screen" : "camera" };
      slot[route.kind] = route.track;
      tiles.set(key, slot);
    }
    return tiles;
  }

  setMuted(kind, muted) {
    this.sendMute(kind, muted);
  }

  sendMute(kind, muted) {
    this.signaling?.send("mute", { kind, muted });
  }

  setConnectionState(which, state) {
    this.connection[which] = state;
    const states = Object.values(this.connection).filter((value) => value !== "new" && value !== "closed");
    let overall = "connecting";
    if (states.includes("failed")) overall = "failed";
    else if (states.includes("disconnected")) overall = "disconnected";
    else if (states.length && states.every((value) => value === "connected")) overall = "connected";
    this.view.connectionState?.(overall);
    if (state === "failed" && !this.ended) this.reconnect("the media connection failed");
  }

  onSocketClosed(event) {
    if (this.ended) return;
    if (this.leaving) {
      this.byeSeen?.();
      return;
    }
    const error = this.lastError;
    if (error && Date.now() - error.at < FATAL_ERROR_WINDOW_MS) this.end("removed", error.message);
    else {
      console.warn(`townhall: signaling closed (code ${event.code}, reason '${event.reason}')`);
      this.reconnect("the connection to the meeting server dropped");
    }
  }

  /**
   * Rejoin after the server went away without `bye`: drop both connections
   * (keeping our camera and microphone), get a fresh token and where the
   * meeting is now, join there and publish again. Gives up after a bounded
   * time, or at once when the server will not have us back.
   */
  async reconnect(reason) {
    if (this.ended || this.leaving || this.reconnecting) return;
    this.reconnecting = true;
    const started = performance.now();
    console.warn(`townhall: reconnecting (${reason})`);
    this.dropConnections();
    this.view.reconnecting?.(reason);
    try {
      const attempts = await rejoinWithBackoff({
        meetingId: this.meetingId,
        participantId: this.participantId,
        controlToken: this.grant.control_token,
        isOver: () => this.ended,
        attempt: (grant) => this.rejoin(grant),
        onRetry: (error) => {
          console.info(`townhall: reconnect attempt failed: ${error?.message || error}`);
          this.dropConnections();
        },
      });
      if (this.ended) return;
      this.reconnects += 1;
      this.lastReconnectMs = Math.round(performance.now() - started);
      console.info(`townhall: reconnected in ${this.lastReconnectMs} ms (${attempts} attempts)`);
      this.reconnecting = false;
      setTimeout(() => this.returning.clear(), RETURN_WINDOW_MS);
      this.view.reconnected?.({ durationMs: this.lastReconnectMs, attempts });
    } catch (error) {
      this.reconnecting = false;
      if (this.ended) return;
      if (error instanceof RejoinRefused) {
        this.end("removed", error.message);
      } else {
        this.end("lost", "", error?.message || "Could not reconnect to the meeting.");
      }
    }
  }

  /** One try: join with the fresh grant on a new socket, then publish the same tracks. */
  async rejoin(fresh) {
    this.grant = { ...this.grant, ...fresh };
    await this.connect();
    if (this.ended) return;
    await this.publish({ required: true });
    if (this.screenTrack && this.screenTrack.readyState === "live") {
      await this.publisher.addScreen(this.screenTrack);
    }
    if (!this.signaling?.isOpen) throw new SignalingError("closed", "The connection dropped again.");
  }

  /** Let go of the socket and both connections; the roster is rebuilt by the next `joined`. */
  dropConnections() {
    if (this.signaling) {
      this.signaling.onClose = null;
      this.signaling.close();
    }
    this.publisher?.close();
    this.subscriber?.close();
    this.publisher = null;
    this.subscriber = null;
    this.connection = { publish: "new", subscribe: "new" };
    this.routes = [];
    for (const id of this.participants.keys()) this.returning.add(id);
    this.participants.clear();
    for (const id of [...this.speaking]) this.setSpeaking(id, false);
    this.view.render?.();
  }

  /** Say goodbye, wait briefly for `bye`, then tear down. */
  async leave() {
    if (this.ended) return;
    this.leaving = true;
    const bye = new Promise((resolve) => {
      this.byeSeen = resolve;
    });
    if (this.signaling?.send("leave")) {
      await Promise.race([bye, new Promise((resolve) => setTimeout(resolve, BYE_WAIT_MS))]);
    }
    this.end("left");
  }

  /** Tear everything down once; tell the view why. */
  end(kind, reason = "", detail = "") {
    if (this.ended) return;
    this.dispose();
    this.routes = [];
    this.view.ended?.({ kind, reason, detail });
  }

  /** Close quietly (page unload): tell the SFU we are gone without waiting. */
  abandon() {
    if (this.ended) return;
    this.signaling?.send("leave");
    this.dispose();
  }

  dispose() {
    this.ended = true;
    this.screenTrack?.stop();
    this.screenTrack = null;
    this.publisher?.close();
    this.subscriber?.close();
    this.signaling?.close();
  }
}

export { SignalingError };
