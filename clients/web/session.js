// One stay in a meeting: the join request, the signaling socket, the publish
// and subscribe connections, and the roster. It holds state and tells its view
// what changed; it never touches the DOM.

import { Signaling, SignalingError, resolveSignalingUrl } from "./signaling.js";
import { Publisher, Subscriber, toIceServers } from "./peers.js";

const JOIN_REQUEST_TIMEOUT_MS = 15000;
const BYE_WAIT_MS = 1000;
// An `error` frame followed this soon by the socket closing was fatal.
const FATAL_ERROR_WINDOW_MS = 5000;

/** The join request was refused or could not be made. */
export class JoinError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "JoinError";
    this.code = code;
  }
}

/** POST /m/{meeting_id}/join and return the validated answer. */
export async function requestJoin(meetingId, name) {
  let response;
  try {
    response = await fetch(`/m/${encodeURIComponent(meetingId)}/join`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ name }),
      signal: AbortSignal.timeout(JOIN_REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const reason = error?.name === "TimeoutError" ? "did not answer in time" : "could not be reached";
    throw new JoinError("network", `The meeting server ${reason}. Check your connection and try again.`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && typeof body.error === "object" ? body.error : null;
    throw new JoinError(
      error?.code || `http_${response.status}`,
      error?.message || `The meeting server refused the request (HTTP ${response.status}).`,
    );
  }
  if (!body || typeof body !== "object") {
    throw new JoinError("bad_response", "The meeting server sent an answer this page does not understand.");
  }
  return body;
}

/**
 * The view a session reports to. Every method is optional:
 * render(), participantJoined(p), participantLeft(p, reason),
 * connectionState(state), notice(text), ended({kind, reason, detail}).
 */
export class Session {
  constructor({ meetingId, name, media, view }) {
    this.meetingId = meetingId;
    this.name = name;
    this.media = media;
    this.view = view;
    this.participantId = null;
    this.role = null;
    this.joinResponse = null;
    this.participants = new Map(); // participant_id -> participant (others only)
    this.departed = new Set();
    this.routes = [];
    this.signaling = null;
    this.publisher = null;
    this.subscriber = null;
    this.iceServers = [];
    this.lastError = null;
    this.leaving = false;
    this.ended = false;
    this.byeSeen = null;
    this.connection = { publish: "new", subscribe: "new" };
  }

  /** Join: the HTTP request, the socket, then publishing. Throws JoinError/SignalingError. */
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
    const join = await requestJoin(this.meetingId, this.name);
    this.joinResponse = join;
    if (!join.token || !join.signaling_url) {
      throw new JoinError(join.status || "not_admitted", join.message || "The meeting did not let you in yet.");
    }
    this.participantId = join.participant_id || null;
    this.signaling = new Signaling(resolveSignalingUrl(join.signaling_url));
    this.registerHandlers();
    const joined = await this.signaling.connect(join.token);
    if (this.ended) return;
    this.signaling.onClose = (event) => this.onSocketClosed(event);
    this.participantId = joined.participant_id || this.participantId;
    this.role = joined.role || null;
    this.iceServers = toIceServers(joined.ice_servers ?? join.ice_servers);
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
    this.signaling.resume();
  }

  async publish() {
    if (this.ended) return;
    if (this.media.audioMuted && this.media.audioTrack) this.sendMute("audio", true);
    if (this.media.videoMuted && this.media.videoTrack) this.sendMute("video", true);
    if (this.media.stream && this.media.stream.getTracks().length) {
      this.publisher = new Publisher({
        iceServers: this.iceServers,
        stream: this.media.stream,
        signaling: this.signaling,
        onConnectionState: (state) => this.setConnectionState("publish", state),
      });
      try {
        await this.publisher.publish();
      } catch (error) {
        console.error("townhall: publishing failed", error);
        if (!this.ended) this.view.notice?.("Could not send your camera and microphone.");
      }
    }
  }

  registerHandlers() {
    this.signaling
      .on("publish-answer", (message) => this.publisher?.applyAnswer(message.sdp))
      .on("subscribe-offer", (message) => this.subscriber?.handleOffer(message))
      .on("participant-joined", (message) => {
        const participant = this.addParticipant(message.participant);
        if (participant) this.view.participantJoined?.(participant);
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
        if (participant) this.view.participantLeft?.(participant, message.reason);
        this.view.render?.();
      })
      .on("error", (message) => {
        this.lastError = { code: message.code, message: message.message || message.code, at: Date.now() };
        this.view.notice?.(this.lastError.message);
      })
      .on("bye", (message) => {
        if (this.leaving) this.byeSeen?.();
        else this.end("removed", message.reason || "the session ended");
      })
      .on("reconnect", (message) => this.end("reconnect", message.reason || "moving to another server"));
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
    if (state === "failed" && !this.ended) {
      this.end("lost", "", "The media connection to the meeting server failed.");
    }
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
      this.end("lost", "", "The connection to the meeting server dropped.");
    }
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
    this.publisher?.close();
    this.subscriber?.close();
    this.signaling?.close();
  }
}

export { SignalingError };
