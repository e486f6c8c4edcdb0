// The REST API as this page uses it: JSON in and out, the server's one error
// shape ({"error": {code, message, details}}) turned into ApiError, and every
// request bounded by a timeout. Calls on a meeting's behalf carry the
// participant's control token (from the join response).

const REQUEST_TIMEOUT_MS = 15000;

/** A refused or failed request; `status` 0 means the server was not reached. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Send one request; resolve with the decoded JSON body (null when empty). */
export async function requestJson(
  method,
  path,
  { body, token, timeoutMs = REQUEST_TIMEOUT_MS, signal, keepalive = false } = {},
) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const timeout = AbortSignal.timeout(timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      keepalive, // outlives the page when it is closing
    });
  } catch (error) {
    if (signal?.aborted) throw error; // the caller gave up: not a network problem
    const reason = error?.name === "TimeoutError" ? "did not answer in time" : "could not be reached";
    throw new ApiError(0, "network", `The meeting server ${reason}. Check your connection and try again.`);
  }
  let answer = null;
  const text = await response.text().catch(() => "");
  if (text) {
    try {
      answer = JSON.parse(text);
    } catch {
      answer = null;
    }
  }
  if (!response.ok) {
    const error = answer && typeof answer.error === "object" && answer.error ? answer.error : {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `The meeting server refused the request (HTTP ${response.status}).`,
      error.details && typeof error.details === "object" ? error.details : {},
    );
  }
  return answer;
}

/** The calls one participant makes about one meeting, with their control token. */
export class MeetingApi {
  constructor(meetingId, controlToken) {
    this.meetingId = meetingId;
    this.token = controlToken || null;
    this.base = `/api/v1/meetings/${encodeURIComponent(meetingId)}`;
  }

  call(method, path, body, options = {}) {
    return requestJson(method, `${this.base}${path}`, { ...options, body, token: this.token });
  }

  /** Long-poll our place in the lobby; `{status, token?, signaling_url?, ice_servers?}`. */
  lobbyStatus(participantId, waitS, signal) {
    return this.call("GET", `/lobby/${encodeURIComponent(participantId)}?wait=${waitS}`, undefined, {
      signal,
      timeoutMs: (waitS + 10) * 1000,
    });
  }

  leaveLobby(participantId) {
    return this.call("DELETE", `/lobby/${encodeURIComponent(participantId)}`, undefined, { keepalive: true });
  }

  lobby() {
    return this.call("GET", "/lobby");
  }

  admit(participantId) {
    return this.call("POST", `/lobby/${encodeURIComponent(participantId)}/admit`, {});
  }

  deny(participantId) {
    return this.call("POST", `/lobby/${encodeURIComponent(participantId)}/deny`, {});
  }

  mute(participantId, kind) {
    return this.call("POST", `/participants/${encodeURIComponent(participantId)}/mute`, { kind });
  }

  remove(participantId, block) {
    return this.call("POST", `/participants/${encodeURIComponent(participantId)}/remove`, { block });
  }

  promote(participantId, role) {
    return this.call("POST", `/participants/${encodeURIComponent(participantId)}/promote`, { role });
  }

  endMeeting() {
    return this.call("POST", "/end", {});
  }

  chatHistory() {
    return this.call("GET", "/chat");
  }

  /** `options`: what the recording includes (live_captions, auto_transcribe, ...); server defaults for the rest. */
  startRecording(options = {}) {
    return this.call("POST", "/recording/start", options);
  }

  stopRecording() {
    return this.call("POST", "/recording/stop", {});
  }

  openBreakoutRooms({ count, durationS }) {
    const body = { count, auto_assign: true };
    if (durationS) body.duration_s = durationS;
    return this.call("POST", "/breakout-rooms", body);
  }

  breakoutRooms() {
    return this.call("GET", "/breakout-rooms");
  }

  closeBreakoutRooms(countdownS) {
    const query = countdownS ? `?countdown_s=${encodeURIComponent(countdownS)}` : "";
    return this.call("DELETE", `/breakout-rooms${query}`);
  }
}
