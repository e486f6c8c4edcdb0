// Signaling: one WebSocket to the SFU, speaking the JSON protocol defined in
// townhall/contract.py. One object per socket; it never reconnects by itself
// (the session rejoins on a new one, with a fresh join token: reconnect.js).

const JOIN_TIMEOUT_MS = 10000;

/** A failure to join or stay joined, with the server's code when it gave one. */
export class SignalingError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SignalingError";
    this.code = code;
  }
}

/** Turn the join response's signaling_url (absolute or relative) into a ws(s) URL. */
export function resolveSignalingUrl(raw, base = location.href) {
  const url = new URL(raw, base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new SignalingError("bad_url", `Unsupported signaling URL: ${raw}`);
  }
  return url.href;
}

export class Signaling {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.handlers = new Map();
    this.onClose = null; // (CloseEvent) => void, for closes we did not ask for
    this.closedByUs = false;
    // Frames that arrive after `joined` wait here until the app has built the
    // session that handles them (see resume()).
    this.paused = true;
    this.backlog = [];
    this.log = []; // the last frames both ways, for window.townhall
  }

  /** Register the handler for one message type (one handler per type). */
  on(type, handler) {
    this.handlers.set(type, handler);
    return this;
  }

  /** Open the socket, send `join` and resolve with the `joined` message. */
  connect(token, timeoutMs = JOIN_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.close();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new SignalingError("timeout", "The meeting server did not answer in time.")),
        timeoutMs,
      );
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (error) {
        fail(new SignalingError("bad_url", error.message));
        return;
      }
      this.ws = ws;
      ws.onopen = () => this.send("join", { token });
      ws.onmessage = (event) => {
        const message = this.parse(event.data);
        if (!message) return;
        if (!settled) {
          if (message.type === "joined") {
            settled = true;
            clearTimeout(timer);
            resolve(message);
          } else if (message.type === "error") {
            fail(new SignalingError(message.code || "error", message.message || "The meeting server refused the connection."));
          } else if (message.type === "bye") {
            fail(new SignalingError("bye", message.reason || "The meeting server ended the session."));
          }
          return;
        }
        this.dispatch(message);
      };
      ws.onclose = (event) => {
        if (!settled) {
          fail(new SignalingError("closed", `The connection closed before joining (code ${event.code}).`));
          return;
        }
        if (!this.closedByUs && this.onClose) this.onClose(event);
      };
      ws.onerror = () => {}; // a close event always follows
    });
  }

  /** Start delivering frames received since `joined`, and those that follow. */
  resume() {
    this.paused = false;
    for (const message of this.backlog.splice(0)) this.dispatch(message);
  }

  parse(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("townhall: dropped a signaling frame that is not JSON");
      return null;
    }
    if (!message || typeof message !== "object" || typeof message.type !== "string") {
      console.warn("townhall: dropped a signaling frame without a type");
      return null;
    }
    this.remember("in", message);
    return message;
  }

  dispatch(message) {
    if (this.paused) {
      this.backlog.push(message);
      return;
    }
    const handler = this.handlers.get(message.type);
    if (!handler) {
      console.debug("townhall: no handler for", message.type);
      return;
    }
    Promise.resolve()
      .then(() => handler(message))
      .catch((error) => console.error(`townhall: handling '${message.type}' failed`, error));
  }

  /** Send one frame; false when the socket is not open. */
  send(type, body = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const message = { type, ...body };
    this.remember("out", message);
    this.ws.send(JSON.stringify(message));
    return true;
  }

  remember(direction, message) {
    const brief = { direction, type: message.type, at: Date.now() };
    // Enough to tell what happened, never message contents (chat text, SDP, tokens).
    for (const key of ["participant_id", "reason", "code", "action", "kind"]) {
      if (typeof message[key] === "string") brief[key] = message[key];
    }
    this.log.push(brief);
    if (this.log.length > 200) this.log.shift();
  }

  get isOpen() {
    return Boolean(this.ws) && this.ws.readyState === WebSocket.OPEN;
  }

  /** Close without reporting it as a lost connection. */
  close(code = 1000) {
    this.closedByUs = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(code);
  }
}
