// Breakout rooms: the host's dialog (open N rooms with automatic assignment
// and an optional duration, see who is where, close them with a countdown),
// and everyone's banner ("You are in Room 2", with the time left).

import { ApiError } from "./api.js";
import { formatCountdown } from "./ui.js";

const $ = (id) => document.getElementById(id);

/** The rooms of a breakout-rooms answer, as [{id, name, members: [{participant_id, name}]}]. */
export function parseRooms(answer) {
  const list = Array.isArray(answer) ? answer : answer?.rooms || answer?.breakout_rooms || [];
  return list
    .filter((room) => room && typeof room.id === "string")
    .map((room, index) => {
      const raw = room.participants || room.members || room.participant_ids || room.assignments || [];
      const members = (Array.isArray(raw) ? raw : [])
        .map((member) =>
          typeof member === "string"
            ? { participant_id: member, name: "" }
            : { participant_id: member?.participant_id || member?.id, name: member?.name || "" },
        )
        .filter((member) => member.participant_id);
      return { id: room.id, name: room.name || `Room ${index + 1}`, members };
    });
}

/** The host's breakout-rooms dialog. */
export class RoomsDialog {
  /** `api()` gives the MeetingApi; `roster()` everyone as {participant_id, name, room}. */
  constructor({ api, roster, onChange, toast }) {
    this.dialog = $("rooms-dialog");
    this.api = api;
    this.roster = roster;
    this.onChange = onChange;
    this.toast = toast;
    this.rooms = [];
    this.closesAt = null;
    $("rooms-close").addEventListener("click", () => this.dialog.close());
    $("rooms-timed").addEventListener("change", (event) => {
      $("rooms-minutes").disabled = !event.target.checked;
      if (event.target.checked) $("rooms-minutes").focus();
    });
    $("rooms-create").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    $("rooms-end").addEventListener("submit", (event) => {
      event.preventDefault();
      this.closeRooms();
    });
  }

  /** The name of a room by id, for the People tab. */
  roomName(id) {
    return this.rooms.find((room) => room.id === id)?.name || "Breakout room";
  }

  /** Learn a room's name from a room-changed frame (we may not have listed them). */
  remember(room) {
    if (room && room.name && !this.rooms.some((known) => known.id === room.id)) {
      this.rooms.push({ id: room.id, name: room.name, members: [] });
    }
  }

  async open() {
    this.showError("rooms-error", "");
    this.showError("rooms-end-error", "");
    this.render();
    this.dialog.showModal();
    (this.rooms.length ? $("rooms-countdown") : $("rooms-count")).focus();
    await this.refresh();
  }

  async refresh() {
    try {
      const answer = await this.api().breakoutRooms();
      this.rooms = parseRooms(answer);
      this.closesAt = answer?.closes_at || null;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) console.warn("townhall: listing rooms failed", error);
    }
    this.render();
    this.onChange?.();
  }

  /** The list of rooms, with members from the answer or, failing that, the roster. */
  render() {
    if (!this.dialog.open && !this.rooms.length) {
      $("rooms-create").hidden = false;
      $("rooms-live").hidden = true;
      return;
    }
    const live = this.rooms.length > 0;
    $("rooms-create").hidden = live;
    $("rooms-live").hidden = !live;
    if (!live) return;
    const everyone = this.roster();
    const names = new Map(everyone.map((person) => [person.participant_id, person.name]));
    const list = $("rooms-list");
    list.replaceChildren();
    for (const room of this.rooms) {
      const members = room.members.length
        ? room.members.map((member) => member.name || names.get(member.participant_id) || "Guest")
        : everyone.filter((person) => person.room === room.id).map((person) => person.name || "Guest");
      const li = document.createElement("li");
      li.className = "room";
      li.dataset.roomId = room.id;
      const head = document.createElement("div");
      head.className = "room-head";
      const name = document.createElement("span");
      name.className = "room-name";
      name.textContent = room.name;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(members.length);
      head.append(name, count);
      const who = document.createElement("p");
      who.className = "room-members";
      who.textContent = members.length ? members.join(", ") : "Nobody yet";
      li.append(head, who);
      list.append(li);
    }
    const closes = Date.parse(this.closesAt);
    $("rooms-summary").textContent =
      `${this.rooms.length} room${this.rooms.length === 1 ? "" : "s"} open` +
      (Number.isFinite(closes) ? ` · closing in ${formatCountdown(closes - Date.now())}` : "");
  }

  async create() {
    const count = Number($("rooms-count").value);
    const timed = $("rooms-timed").checked;
    const minutes = Number($("rooms-minutes").value);
    if (!Number.isInteger(count) || count < 1 || count > 50) {
      this.showError("rooms-error", "Choose between 1 and 50 rooms.");
      $("rooms-count").focus();
      return;
    }
    if (timed && (!Number.isFinite(minutes) || minutes < 1)) {
      this.showError("rooms-error", "Choose how many minutes the rooms stay open.");
      $("rooms-minutes").focus();
      return;
    }
    const button = $("rooms-open");
    button.disabled = true;
    try {
      const answer = await this.api().openBreakoutRooms({ count, durationS: timed ? Math.round(minutes * 60) : 0 });
      this.rooms = parseRooms(answer);
      this.closesAt = answer?.closes_at || null;
      this.showError("rooms-error", "");
      this.toast(`${count} breakout room${count === 1 ? "" : "s"} opened`);
      this.render();
      this.onChange?.();
      $("rooms-countdown").focus();
    } catch (error) {
      this.showError("rooms-error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  async closeRooms() {
    const countdown = Number($("rooms-countdown").value);
    if (!Number.isInteger(countdown) || countdown < 0 || countdown > 600) {
      this.showError("rooms-end-error", "The countdown must be from 0 to 600 seconds.");
      return;
    }
    const button = $("rooms-close-all");
    button.disabled = true;
    try {
      await this.api().closeBreakoutRooms(countdown);
      this.toast(countdown ? `Rooms close in ${countdown} s` : "Everyone is back in the main meeting");
      if (!countdown) this.rooms = [];
      this.closesAt = countdown ? new Date(Date.now() + countdown * 1000).toISOString() : null;
      this.dialog.close();
      this.onChange?.();
    } catch (error) {
      this.showError("rooms-end-error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  /** Everyone is back in the main meeting: forget the rooms. */
  reset() {
    this.rooms = [];
    this.closesAt = null;
    if (this.dialog.open) this.render();
  }

  showError(id, text) {
    $(id).textContent = text || "";
    $(id).hidden = !text;
  }
}

/** The banner over the stage while we are in a breakout room. */
export class RoomBanner {
  constructor() {
    this.el = $("room-banner");
    this.timer = null;
    this.closesAt = null;
  }

  show(room, closesAt) {
    clearInterval(this.timer);
    this.timer = null;
    if (!room) {
      this.el.hidden = true;
      return;
    }
    $("room-banner-text").textContent = `You are in ${room.name || "a breakout room"}`;
    this.el.hidden = false;
    const closes = Date.parse(closesAt);
    const countdown = $("room-countdown");
    if (!Number.isFinite(closes)) {
      countdown.hidden = true;
      return;
    }
    const tick = () => {
      const left = closes - Date.now();
      countdown.hidden = false;
      countdown.textContent = left > 0 ? `Closes in ${formatCountdown(left)}` : "Closing…";
      countdown.dataset.urgent = String(left < 30000);
      if (left <= 0) clearInterval(this.timer);
    };
    tick();
    this.timer = setInterval(tick, 1000);
  }

  hide() {
    this.show(null, null);
  }
}
