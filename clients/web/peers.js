// Peer connections: one to publish our camera and microphone, one to receive
// everyone else's tracks (as in townhall/contract.py, so offers never collide).
// The SFU does not do trickle ICE: every description is sent once ICE
// gathering has finished, with all candidates inside the SDP.

const ICE_GATHERING_TIMEOUT_MS = 5000;

/** Resolve once `pc` has gathered all candidates (or after a timeout). */
export function iceGatheringComplete(pc, timeoutMs = ICE_GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onState);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const onState = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const onCandidate = (event) => {
      if (!event.candidate) done();
    };
    // Send what we have rather than wait forever; the SFU may still connect.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onState);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

/** The list the server gave, cleaned into RTCIceServer dictionaries. */
export function toIceServers(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((server) => server && (typeof server.urls === "string" || Array.isArray(server.urls)))
    .map((server) => {
      const clean = { urls: server.urls };
      if (server.username) clean.username = server.username;
      if (server.credential) clean.credential = server.credential;
      return clean;
    });
}

const SOURCE_OF_KIND = { audio: "microphone", video: "camera" };
const ANSWER_TIMEOUT_MS = 10000;

/**
 * The publish connection: we offer sendonly tracks, the SFU answers. Every
 * offer names the source of each mid (camera, microphone, screen); a screen
 * share is one more transceiver and a new offer on the same connection.
 * Offers go one at a time: the next waits for the previous answer.
 */
export class Publisher {
  constructor({ iceServers, stream, signaling, onConnectionState }) {
    this.stream = stream;
    this.signaling = signaling;
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.addEventListener("connectionstatechange", () => onConnectionState?.(this.pc.connectionState));
    this.answered = false;
    this.sources = new Map(); // transceiver -> source
    this.screen = null; // the screen share's transceiver, while sharing
    this.pendingAnswer = null; // {resolve, reject} of the offer in flight
    this.queue = Promise.resolve();
  }

  /** Add our camera and microphone and send the first offer; resolves once it is sent. */
  async publish() {
    for (const track of this.stream.getTracks()) {
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      this.sources.set(transceiver, SOURCE_OF_KIND[track.kind]);
    }
    const { sent } = this.renegotiate();
    return sent;
  }

  /** Start sending a screen track; resolves once the SFU has answered. */
  addScreen(track) {
    if (this.screen && this.screen.currentDirection !== "stopped") {
      this.screen.direction = "sendonly";
      return this.screen.sender.replaceTrack(track).then(() => this.renegotiate().answered);
    }
    this.screen = this.pc.addTransceiver(track, { direction: "sendonly" });
    this.sources.set(this.screen, "screen");
    return this.renegotiate().answered;
  }

  /** Stop sending the screen; the m-section goes inactive (mids are never reused). */
  async removeScreen() {
    if (!this.screen) return;
    await this.screen.sender.replaceTrack(null);
    this.screen.direction = "inactive";
    await this.renegotiate().answered;
  }

  /** Queue one offer; `sent` resolves when it left, `answered` when the answer is applied. */
  renegotiate() {
    let markSent;
    const sent = new Promise((resolve, reject) => {
      markSent = { resolve, reject };
    });
    const answered = (this.queue = this.queue
      .catch(() => {})
      .then(async () => {
        try {
          await this.sendOffer();
          markSent.resolve(this.offeredSources());
        } catch (error) {
          markSent.reject(error);
          throw error;
        }
        await this.awaitAnswer();
      }));
    answered.catch(() => {}); // reported through the promises handed out
    return { sent, answered };
  }

  async sendOffer() {
    if (this.pc.signalingState === "closed") throw new Error("the publish connection is closed");
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    const answer = new Promise((resolve, reject) => {
      this.pendingAnswer = { resolve, reject };
    });
    answer.catch(() => {}); // awaitAnswer() reports it
    this.answerPromise = answer;
    if (!this.signaling.send("publish-offer", { sdp: this.pc.localDescription.sdp, sources: this.offeredSources() })) {
      this.pendingAnswer = null;
      throw new Error("signaling closed before the publish offer was sent");
    }
  }

  awaitAnswer() {
    const answer = this.answerPromise;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("the meeting server did not answer the publish offer")), ANSWER_TIMEOUT_MS);
    });
    return Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
  }

  /** mid -> source for every transceiver that has a mid. */
  offeredSources() {
    const sources = {};
    for (const [transceiver, source] of this.sources) {
      if (transceiver.mid !== null) sources[transceiver.mid] = source;
    }
    return sources;
  }

  async applyAnswer(sdp) {
    const pending = this.pendingAnswer;
    this.pendingAnswer = null;
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
      this.answered = true;
      pending?.resolve();
    } catch (error) {
      pending?.reject(error);
      throw error;
    }
  }

  /** Level of our own microphone (0..1), from the sender's media-source stats. */
  async audioLevel() {
    const stats = await this.pc.getStats();
    for (const report of stats.values()) {
      if (report.type === "media-source" && report.kind === "audio" && typeof report.audioLevel === "number") {
        return report.audioLevel;
      }
    }
    return 0;
  }

  close() {
    this.pendingAnswer?.reject(new Error("the publish connection closed"));
    this.pendingAnswer = null;
    this.pc.close();
  }
}

/**
 * The subscribe connection: the SFU offers one sendonly m-section per remote
 * track, we answer. Offers are handled one at a time, in arrival order.
 */
export class Subscriber {
  constructor({ iceServers, signaling, onRoutes, onConnectionState, onError }) {
    this.signaling = signaling;
    this.onRoutes = onRoutes;
    this.onError = onError;
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.addEventListener("connectionstatechange", () => onConnectionState?.(this.pc.connectionState));
    this.pc.addEventListener("track", () => this.reportRoutes());
    this.tracks = new Map(); // mid -> {mid, track_id, participant_id, kind, source}
    this.queue = Promise.resolve();
    this.negotiations = 0;
  }

  /** Queue one `subscribe-offer`; resolves after its answer was sent. */
  handleOffer(message) {
    this.queue = this.queue
      .then(() => this.negotiate(message))
      .catch((error) => this.onError?.(error));
    return this.queue;
  }

  async negotiate({ sdp, tracks }) {
    if (this.pc.signalingState === "closed") return;
    // The table must be in place before setRemoteDescription fires `track`.
    this.tracks = new Map((Array.isArray(tracks) ? tracks : []).map((info) => [String(info.mid), info]));
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await iceGatheringComplete(this.pc);
    if (!this.signaling.send("subscribe-answer", { sdp: this.pc.localDescription.sdp })) {
      throw new Error("signaling closed before the subscribe answer was sent");
    }
    this.negotiations += 1;
    this.reportRoutes();
  }

  /** Live receive routes: each active transceiver joined with its row of the tracks table. */
  routes() {
    const routes = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const info = transceiver.mid === null ? null : this.tracks.get(transceiver.mid);
      if (!info) continue;
      const direction = transceiver.currentDirection;
      if (direction === "inactive" || direction === "stopped" || direction === "sendonly") continue;
      routes.push({ ...info, mid: transceiver.mid, track: transceiver.receiver.track, receiver: transceiver.receiver });
    }
    return routes;
  }

  reportRoutes() {
    if (this.pc.signalingState !== "closed") this.onRoutes?.(this.routes());
  }

  close() {
    this.pc.close();
  }
}
