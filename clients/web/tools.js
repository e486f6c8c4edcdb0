// The meeting's tools around the tiles: the side panel (People with the
// lobby, Chat), the host's knock card, breakout-rooms dialog and actions, the
// breakout banner, the recording indicator and button, and live captions. app.js hands it the session's news; it keeps what the
// tools show (our role, the lobby, the room) in step.

import { RoomBanner, RoomsDialog } from "./breakout.js";
import { CaptionsView } from "./captions.js";
import { ChatView } from "./chat.js";
import { HostActions } from "./host.js";
import { KnockCard, PeopleView, SidePanel } from "./panel.js";
import { RecordingControls } from "./recording.js";
import * as ui from "./ui.js";

/** Whether a REST recording request failed because this server cannot take it that way (no route, token not accepted). */
function noRecordingRoute(error) {
  if (error?.status === 401 || error?.status === 405) return true;
  return error?.status === 404 && (error.code === "not_found" || error.code === "http_404");
}

export class MeetingTools {
  /**
   * `session()` and `api()` give the current Session and MeetingApi;
   * `roster()` everyone as participant rows, ourselves first;
   * `onLayout()` after the panel opened or closed (the stage resized).
   */
  constructor({ session, api, roster, onLayout }) {
    this.session = session;
    this.api = api;
    this.roster = roster;
    this.onLayout = onLayout;
    this.isHost = false;
    this.lobby = [];
    this.chatLoaded = false;
    this.roomId = null;

    this.panel = new SidePanel({ onChange: (tab) => this.panelChanged(tab) });
    this.people = new PeopleView({
      onCommand: (command, person) => this.host.command(command, person),
      onAdmit: (person) => this.host.admit(person),
      onDeny: (person) => this.host.deny(person),
      onAdmitAll: () => this.host.admitAll(this.lobby),
    });
    this.host = new HostActions({
      api,
      busy: this.people.busy,
      redraw: () => this.render(),
      decided: (id) => this.lobbyChanged(this.lobby.filter((person) => person.participant_id !== id)),
    });
    this.knock = new KnockCard({
      onAdmit: (person) => this.host.admit(person),
      onDeny: (person) => this.host.deny(person),
      onAdmitAll: () => this.host.admitAll(this.lobby),
      onViewAll: () => this.panel.open("people"),
    });
    this.chat = new ChatView({ onSend: (text, to) => this.session()?.sendChat(text, to) ?? false });
    this.chat.onUnread = (count) => ui.setBadge("chat-badge", count, "unread");
    this.rooms = new RoomsDialog({ api, roster, onChange: () => this.render(), toast: (text) => ui.toast(text) });
    this.banner = new RoomBanner();
    this.recording = new RecordingControls({
      request: (action, options) => this.requestRecording(action, options),
    });
    this.captions = new CaptionsView({ hint: (text) => ui.toast(text) });
    document.getElementById("rooms-button").addEventListener("click", () => this.rooms.open());
    document.getElementById("end-button").addEventListener("click", () => this.host.endMeeting());
  }

  /** A new session: nothing carried over from the last one. */
  reset() {
    this.chat.clear();
    this.chatLoaded = false;
    this.lobby = [];
    this.roomId = null;
    this.rooms.reset();
    this.captions.reset();
  }

  /** The session ended: put everything away. */
  close() {
    this.panel.close();
    this.banner.hide();
    this.recording.reset();
    this.captions.clear();
    this.isHost = false;
    ui.setHostControls(false);
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  }

  render() {
    const session = this.session();
    if (!session) return;
    const [self, ...others] = this.roster();
    this.people.render({ self, others, isHost: this.isHost, roomName: (id) => this.rooms.roomName(id) });
    this.people.renderLobby(this.lobby, this.isHost);
    this.knock.render(this.lobby, this.isHost && !this.panel.isOpen("people"));
    ui.setBadge("lobby-badge", this.isHost ? this.lobby.length : 0, "waiting to join");
    this.chat.setSelf(session.participantId, self?.name);
    this.chat.setRecipients(others);
    if (this.rooms.dialog.open) this.rooms.render();
    this.captions.setContext({ selfId: session.participantId, recording: Boolean(this.recording.recording) });
  }

  /**
   * Ask the REST API, which takes the recording's options; where this server
   * has no such route, ask over signaling (the server's defaults). Either way
   * the answer everyone sees is a `recording` frame.
   */
  async requestRecording(action, options = {}) {
    const api = this.api();
    if (api) {
      try {
        await (action === "start" ? api.startRecording(options) : api.stopRecording());
        return;
      } catch (error) {
        if (!noRecordingRoute(error)) throw error;
      }
    }
    if (!this.session()?.requestRecording(action)) throw new Error("you are not connected to the meeting");
  }

  recordingJoined(recording) {
    this.recording.joined(recording);
    this.render();
  }

  recordingChanged(message) {
    this.recording.changed(message);
    this.render();
  }

  recordingRefused(error) {
    this.recording.refused(error);
  }

  caption(message) {
    this.captions.add(message);
  }

  panelChanged(tab) {
    this.chat.setOpen(tab === "chat");
    if (tab === "chat") this.loadChatHistory();
    this.render();
    this.onLayout?.();
  }

  async loadChatHistory() {
    const api = this.api();
    if (this.chatLoaded || !api) return;
    this.chatLoaded = true;
    try {
      const answer = await api.chatHistory();
      const messages = Array.isArray(answer) ? answer : answer?.messages || answer?.items || [];
      this.chat.setHistory(messages);
    } catch (error) {
      this.chatLoaded = false;
      console.warn("townhall: chat history failed", error);
      this.chat.showError(`Earlier messages could not be loaded: ${error.message}`, "info");
    }
  }

  chatError(error) {
    this.chat.failed(error.message);
    if (!this.panel.isOpen("chat")) ui.toast(error.message, { tone: "warning", timeoutMs: 6000 });
  }

  lobbyChanged(waiting) {
    const known = new Set(this.lobby.map((person) => person.participant_id));
    const arrived = waiting.filter((person) => !known.has(person.participant_id));
    this.lobby = waiting;
    if (this.isHost && arrived.length) {
      const text =
        arrived.length === 1
          ? `${arrived[0].name || "Someone"} is waiting to join`
          : `${arrived.length} people are waiting to join`;
      // With the People tab open, a toast; closed, the knock card shows it (and is read out).
      if (this.panel.isOpen("people")) ui.toast(text);
      else ui.announce(text);
    }
    this.render();
  }

  roomChanged(room, closesAt) {
    const previous = this.roomId;
    this.roomId = room?.id ?? null;
    this.rooms.remember(room);
    this.banner.show(room, closesAt);
    if (room && room.id !== previous) ui.toast(`You moved to ${room.name || "a breakout room"}`);
    if (!room) {
      this.rooms.reset();
      if (previous) ui.toast("You are back in the main meeting");
    }
    this.render();
  }

  permissionsChanged(role, permissions, { initial = false } = {}) {
    const wasHost = this.isHost;
    this.isHost = role === "host";
    ui.setHostControls(this.isHost);
    this.chat.setEnabled(permissions.chat !== false, "Sending messages is turned off for you in this meeting.");
    document.getElementById("screen-button").hidden =
      !permissions.screen_share || !navigator.mediaDevices?.getDisplayMedia;
    this.recording.setAllowed(permissions.record === true);
    if (this.isHost && !wasHost) {
      if (!initial) ui.toast("You are now a host");
      // A new host may have missed the lobby frames sent before; ask once.
      this.api()
        ?.lobby()
        .then(
          (answer) => {
            const waiting = Array.isArray(answer) ? answer : answer?.waiting;
            if (Array.isArray(waiting) && !this.lobby.length) this.lobbyChanged(waiting);
          },
          () => {},
        );
    }
    this.render();
  }
}
