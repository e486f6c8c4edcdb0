// Getting back into the meeting after its server went away (townhall/contract.py):
// ask the control plane where the meeting is now, with a fresh join token
// (POST /api/v1/meetings/{id}/participants/{pid}/reconnect, with our control
// token), and join there. Retried with backoff for a bounded time; refusals
// that retrying cannot change (removed, blocked, ended) stop at once.

import { ApiError, requestJson } from "./api.js";

export const RECONNECT_WITHIN_MS = 60000;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 2000;
// Answers that mean "not you, not here, not any more".
const FINAL_STATUSES = new Set([400, 401, 403, 404, 409, 410]);

/** The server will not have us back (removed, blocked, the meeting ended). */
export class RejoinRefused extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "RejoinRefused";
    this.status = status;
    this.code = code;
  }
}

/** Delays between attempts: 250 ms doubling to 2 s. */
export function* backoffDelays(first = FIRST_DELAY_MS, cap = MAX_DELAY_MS) {
  let delay = first;
  for (;;) {
    yield delay;
    delay = Math.min(delay * 2, cap);
  }
}

/** A fresh grant `{token, signaling_url, ice_servers}` for this participant. */
export async function requestRejoin(meetingId, participantId, controlToken) {
  const path =
    `/api/v1/meetings/${encodeURIComponent(meetingId)}` +
    `/participants/${encodeURIComponent(participantId)}/reconnect`;
  try {
    return await requestJson("POST", path, { token: controlToken, timeoutMs: 10000 });
  } catch (error) {
    if (error instanceof ApiError && FINAL_STATUSES.has(error.status)) {
      throw new RejoinRefused(error.status, error.code, error.message);
    }
    throw error;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Call `attempt(grant)` with a fresh grant until it succeeds; resolves with the
 * number of attempts. Throws RejoinRefused at once, or an Error after `withinMs`.
 */
export async function rejoinWithBackoff({
  meetingId,
  participantId,
  controlToken,
  attempt,
  isOver = () => false,
  onRetry = () => {},
  withinMs = RECONNECT_WITHIN_MS,
}) {
  const deadline = performance.now() + withinMs;
  let attempts = 0;
  let last = null;
  for (const delay of backoffDelays()) {
    if (isOver()) return attempts;
    attempts += 1;
    try {
      const grant = await requestRejoin(meetingId, participantId, controlToken);
      if (isOver()) return attempts;
      await attempt(grant);
      return attempts;
    } catch (error) {
      if (error instanceof RejoinRefused) throw error;
      // The server refused the socket itself (token, meeting ended): also final.
      if (error?.name === "SignalingError" && !["closed", "timeout", "bad_url"].includes(error.code)) {
        throw new RejoinRefused(0, error.code, error.message);
      }
      last = error;
      onRetry(error);
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    await sleep(Math.min(delay, remaining));
  }
  const seconds = Math.round(withinMs / 1000);
  const why = last?.message ? ` ${last.message}` : "";
  throw new Error(`Tried for ${seconds} s to get back into the meeting.${why}`);
}
