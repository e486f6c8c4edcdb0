// Recording as everyone in the meeting sees it: the indicator in the header
// (people must know they are recorded), the toasts when it starts, stops or
// fails, and the Record button for those whose `permissions.record` allows it.
// The server's `recording` frames are the only truth: pressing the button
// asks, and the indicator changes when the server says it did.

import { runningRecording } from "./session.js";
import { toast } from "./ui.js";

const $ = (id) => document.getElementById(id);

// How long the button waits for the server's `recording` (or `error`) answer.
const ANSWER_TIMEOUT_MS = 10000;
const RECORDED_TOAST = "This meeting is being recorded";

/** "Recording failed: <reason>", with the server's lower-case reason tidied. */
export function failureText(reason) {
  const text = String(reason || "").replaceAll("_", " ").trim();
  return text ? `Recording failed: ${text}` : "Recording failed";
}

export class RecordingControls {
  /**
   * `request(action, options)` asks the server to "start" (with what to
   * include) or "stop"; it resolves when the request went out and rejects
   * with the server's refusal.
   */
  constructor({ request }) {
    this.request = request;
    this.recording = null; // {recording_id} while the meeting is recorded
    this.allowed = false;
    this.pending = null; // the action asked for and not answered yet
    this.answerTimer = null;
    this.indicator = $("recording-indicator");
    this.button = $("record-button");
    this.button.addEventListener("click", () => this.pressed());
    this.render();
  }

  /** Whether this participant may start and stop recordings (from `permissions.record`). */
  setAllowed(allowed) {
    this.allowed = Boolean(allowed);
    this.render();
  }

  /** The meeting's state when we joined: a recording already running is announced at once. */
  joined(recording) {
    this.recording = runningRecording(recording);
    this.render();
    if (this.recording) toast(RECORDED_TOAST, { tone: "recording", timeoutMs: 6000 });
  }

  /** A `recording` frame: {state: started|stopped|failed, recording_id, reason}. */
  changed(message) {
    this.answered();
    if (message.state === "started") {
      const already = this.recording?.recording_id === message.recording_id;
      this.recording = runningRecording(message);
      if (!already) toast(RECORDED_TOAST, { tone: "recording", timeoutMs: 6000 });
    } else if (message.state === "stopped") {
      if (this.recording) toast("Recording stopped");
      this.recording = null;
    } else if (message.state === "failed") {
      this.recording = null;
      toast(failureText(message.reason), { tone: "warning", timeoutMs: 8000 });
    }
    this.render();
  }

  /** The server refused our request (an `error` frame, or the REST answer). */
  refused(error) {
    const action = this.pending;
    this.answered();
    const message = String(error?.message || error?.code || "refused");
    const verb = action === "stop" ? "stop" : "start";
    toast(`Could not ${verb} recording: ${message}`, { tone: "warning", timeoutMs: 6000 });
    this.render();
  }

  /** The session ended: nothing is recorded as far as this page knows. */
  reset() {
    this.answered();
    this.recording = null;
    this.allowed = false;
    this.render();
  }

  async pressed() {
    if (this.pending || !this.allowed) return;
    const action = this.recording ? "stop" : "start";
    let options = {};
    if (action === "start") {
      options = await this.askOptions();
      if (!options || this.recording || this.pending) return;
    }
    this.pending = action;
    this.answerTimer = setTimeout(
      () => this.refused({ message: "the meeting server did not answer in time" }),
      ANSWER_TIMEOUT_MS,
    );
    this.render();
    try {
      await this.request(action, options);
    } catch (error) {
      if (this.pending === action) this.refused(error);
    }
  }

  /** The Start recording dialog: resolves with what to include, or null when cancelled. */
  askOptions() {
    const dialog = $("record-dialog");
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          if (dialog.returnValue !== "ok") {
            resolve(null);
            return;
          }
          const transcript = $("record-transcript").checked;
          resolve({
            live_captions: $("record-captions").checked,
            auto_transcribe: transcript,
            generate_summary: transcript,
          });
        },
        { once: true },
      );
      dialog.showModal();
      $("record-confirm").focus();
    });
  }

  answered() {
    clearTimeout(this.answerTimer);
    this.answerTimer = null;
    this.pending = null;
  }

  render() {
    const recording = Boolean(this.recording);
    this.indicator.hidden = !recording;
    const button = this.button;
    button.hidden = !this.allowed;
    button.dataset.recording = String(recording);
    button.disabled = Boolean(this.pending);
    button.setAttribute("aria-busy", String(Boolean(this.pending)));
    let label = recording ? "Stop recording" : "Start recording";
    if (this.pending === "start") label = "Starting recording…";
    else if (this.pending === "stop") label = "Stopping recording…";
    button.setAttribute("aria-label", label);
    button.title = label;
  }
}
