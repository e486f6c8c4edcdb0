// Getting in: the join request (with an invite from the page's URL, if any),
// then, when the meeting has a waiting room, the long poll that waits for a
// host to admit or deny us. Refusals become JoinErrors with a message a
// person can act on.

import { ApiError, MeetingApi, requestJson } from "./api.js";

const LOBBY_WAIT_S = 25;
const LOBBY_RETRY_MS = [1000, 2000, 5000, 10000];

/** The join request was refused, or we were not let in. */
export class JoinError extends Error {
  constructor(code, message, { rule = null, status = 0, reason = "" } = {}) {
    super(message);
    this.name = "JoinError";
    this.code = code;
    this.rule = rule;
    this.status = status;
    this.reason = reason;
  }
}

// What each access rule means to the person refused (error.details.rule).
const RULE_MESSAGES = {
  allow_anonymous_join: "This meeting is only open to invited people. Ask the host for an invite link.",
  anonymous: "This meeting is only open to invited people. Ask the host for an invite link.",
  allowed_domains: "This meeting is limited to people from certain organizations. Ask the host for an invite.",
  domain: "This meeting is limited to people from certain organizations. Ask the host for an invite.",
  blocked_users: "The host has blocked you from this meeting.",
  blocked: "The host has blocked you from this meeting.",
  max_participants: "This meeting is full. Try again when someone leaves.",
  require_e2ee: "This meeting requires end-to-end encryption, which this page does not support yet.",
  meeting_ended: "This meeting has ended.",
};

/** A JoinError a person can read, from a refused request. */
export function refusal(error) {
  if (!(error instanceof ApiError)) return error;
  const rule = error.details?.rule || null;
  let message = error.message;
  if (error.code === "meeting_full" || error.status === 409) {
    const limit = error.details?.max_participants;
    message = limit
      ? `This meeting is full (${limit} people). Try again when someone leaves.`
      : "This meeting is full. Try again when someone leaves.";
  } else if (rule === "invite") {
    // The server says what is wrong with it: expired, used up, for someone else.
    const what = String(error.message || "this invite link is not valid").replace(/\.$/, "");
    message = `${what[0].toUpperCase()}${what.slice(1)}. Ask the host for a new invite link.`;
  } else if (rule && RULE_MESSAGES[rule]) {
    message = RULE_MESSAGES[rule];
  } else if (error.code === "access_denied") {
    message = `You can't join this meeting: ${error.message}`;
  } else if (error.code === "meeting_ended") {
    message = RULE_MESSAGES.meeting_ended;
  }
  return new JoinError(error.code, message, { rule, status: error.status });
}

/** POST /m/{meeting_id}/join; the grant, with status "joined" or "waiting". */
export async function requestJoin(meetingId, name, invite) {
  const body = { name };
  if (invite) body.invite = invite;
  let grant;
  try {
    grant = await requestJson("POST", `/m/${encodeURIComponent(meetingId)}/join`, { body });
  } catch (error) {
    throw refusal(error);
  }
  if (!grant || typeof grant !== "object") {
    throw new JoinError("bad_response", "The meeting server sent an answer this page does not understand.");
  }
  return grant;
}

/**
 * Wait in the lobby until a host decides. Resolves with the grant completed by
 * the admission (token, signaling_url, ice_servers); throws JoinError "denied"
 * when refused, or an AbortError when `signal` fires (the person cancelled).
 * `onRetry(attempt)` is told when the server could not be reached.
 */
export async function waitForAdmission(grant, { signal, onRetry } = {}) {
  const api = new MeetingApi(grant.meeting_id, grant.control_token);
  let failures = 0;
  for (;;) {
    signal?.throwIfAborted();
    let answer;
    try {
      answer = await api.lobbyStatus(grant.participant_id, LOBBY_WAIT_S, signal);
      failures = 0;
    } catch (error) {
      signal?.throwIfAborted();
      if (error instanceof ApiError && error.status === 404) {
        throw new JoinError("lobby_gone", "Your place in the waiting room is gone. Ask to join again.");
      }
      if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw refusal(error);
      onRetry?.(failures + 1);
      await sleep(LOBBY_RETRY_MS[Math.min(failures, LOBBY_RETRY_MS.length - 1)], signal);
      failures += 1;
      continue;
    }
    const status = answer?.status;
    if (status === "joined" && answer.token) {
      return { ...grant, ...answer, status: "joined" };
    }
    if (status === "denied") {
      throw new JoinError("denied", "The host did not let you in.", { reason: String(answer.reason || "") });
    }
    // "waiting": the long poll ran out; ask again.
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
