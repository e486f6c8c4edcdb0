// What a host does from the page: admit or deny people in the lobby, mute,
// promote or remove a participant, end the meeting for all. Each action is
// one REST call with the host's control token; questions that cannot be
// undone are confirmed first. The server's answer arrives over signaling
// (lobby, participant-updated, participant-left), so the page only reports
// failures.

import { confirmDialog, toast } from "./ui.js";

const COMMAND_DONE = {
  "mute-audio": (name) => `Muted ${name}`,
  "mute-video": (name) => `Stopped ${name}'s video`,
  promote: (name) => `${name} is now a host`,
  remove: (name) => `Removed ${name}`,
  block: (name) => `Removed and blocked ${name}`,
};

export class HostActions {
  /**
   * `api()` gives the MeetingApi; `busy` is the set of ids with an action in
   * flight; `redraw()` after changes; `decided(id)` when a waiter was let in
   * or turned away (the next `lobby` frame confirms it).
   */
  constructor({ api, busy, redraw, decided }) {
    this.api = api;
    this.busy = busy;
    this.redraw = redraw;
    this.decided = decided;
  }

  async run(participantId, action, done, failed) {
    this.busy.add(participantId);
    this.redraw();
    try {
      await action();
      if (done) toast(done);
      return true;
    } catch (error) {
      toast(`${failed}: ${error.message}`, { tone: "warning", timeoutMs: 6000 });
      return false;
    } finally {
      this.busy.delete(participantId);
      this.redraw();
    }
  }

  async admit(person) {
    const name = person.name || "Guest";
    const id = person.participant_id;
    const done = await this.run(id, () => this.api().admit(id), `${name} was let in`, `Could not admit ${name}`);
    if (done) this.decided(id);
    return done;
  }

  async deny(person) {
    const name = person.name || "Guest";
    const id = person.participant_id;
    const done = await this.run(id, () => this.api().deny(id), "", `Could not deny ${name}`);
    if (done) this.decided(id);
    return done;
  }

  async admitAll(waiting) {
    for (const person of [...waiting]) await this.admit(person);
  }

  /** One entry of the person menu. */
  async command(command, person) {
    const name = person.name || "Guest";
    const id = person.participant_id;
    const api = this.api();
    let action;
    if (command === "mute-audio") action = () => api.mute(id, "audio");
    else if (command === "mute-video") action = () => api.mute(id, "video");
    else if (command === "promote") {
      const ok = await confirmDialog({
        title: `Make ${name} a host?`,
        detail: "Hosts can admit people, mute and remove participants, open breakout rooms and end the meeting.",
        confirmLabel: "Make host",
        tone: "primary",
      });
      if (!ok) return false;
      action = () => api.promote(id, "host");
    } else if (command === "remove" || command === "block") {
      const block = command === "block";
      const ok = await confirmDialog({
        title: block ? `Remove and block ${name}?` : `Remove ${name}?`,
        detail: block
          ? `${name} leaves the meeting now and cannot join it again.`
          : `${name} leaves the meeting now. They can ask to join again.`,
        confirmLabel: block ? "Remove and block" : "Remove",
      });
      if (!ok) return false;
      action = () => api.remove(id, block);
    } else {
      return false;
    }
    return this.run(id, action, COMMAND_DONE[command](name), `Could not do that to ${name}`);
  }

  async endMeeting() {
    const ok = await confirmDialog({
      title: "End the meeting for everyone?",
      detail: "Everyone is disconnected and the meeting closes for good. This cannot be undone.",
      confirmLabel: "End meeting for all",
    });
    if (!ok) return false;
    try {
      await this.api().endMeeting();
      return true;
    } catch (error) {
      toast(`Could not end the meeting: ${error.message}`, { tone: "warning", timeoutMs: 6000 });
      return false;
    }
  }
}
