// The side panel (People and Chat tabs) and the People tab: who is in the
// meeting, who waits in the lobby, and, for hosts, what can be done to each
// (the person menu) and the "someone wants to join" card on the stage.
// Nothing here speaks to the network: actions go out through callbacks.

import { hueFor, initials } from "./ui.js";

const $ = (id) => document.getElementById(id);

function svg(id, className = "icon") {
  return `<svg class="${className}" aria-hidden="true"><use href="#${id}"/></svg>`;
}

function avatar(key, name) {
  const el = document.createElement("span");
  el.className = "person-avatar";
  el.style.setProperty("--avatar-hue", hueFor(key));
  el.setAttribute("aria-hidden", "true");
  el.textContent = initials(name);
  return el;
}

/** "just now", "2 min", "1 h" since an ISO time. */
function waitedFor(since, now = Date.now()) {
  const started = Date.parse(since);
  if (!Number.isFinite(started)) return "";
  const minutes = Math.floor((now - started) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h`;
}

/** The drawer at the stage's side; one tab shows at a time. */
export class SidePanel {
  constructor({ onChange } = {}) {
    this.el = $("side-panel");
    this.onChange = onChange;
    this.tab = null;
    this.tabs = {
      people: { tab: $("tab-people"), panel: $("people-panel"), toggle: $("people-button") },
      chat: { tab: $("tab-chat"), panel: $("chat-panel"), toggle: $("chat-button") },
    };
    for (const [name, parts] of Object.entries(this.tabs)) {
      parts.toggle.addEventListener("click", () => (this.tab === name ? this.close() : this.open(name)));
      parts.tab.addEventListener("click", () => this.open(name));
      parts.tab.addEventListener("keydown", (event) => this.onTabKey(event));
    }
    $("side-panel-close").addEventListener("click", () => this.close());
    this.el.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) {
        event.preventDefault();
        this.close();
      }
    });
  }

  open(name) {
    const previous = this.tab;
    this.tab = name;
    this.el.hidden = false;
    for (const [other, parts] of Object.entries(this.tabs)) {
      const selected = other === name;
      parts.panel.hidden = !selected;
      parts.tab.setAttribute("aria-selected", String(selected));
      parts.tab.tabIndex = selected ? 0 : -1;
      parts.toggle.setAttribute("aria-expanded", String(selected));
      parts.toggle.dataset.active = String(selected);
    }
    if (previous !== name) this.onChange?.(name);
  }

  close() {
    if (!this.tab) return;
    const toggle = this.tabs[this.tab].toggle;
    this.tab = null;
    this.el.hidden = true;
    for (const parts of Object.values(this.tabs)) {
      parts.toggle.setAttribute("aria-expanded", "false");
      parts.toggle.dataset.active = "false";
    }
    this.onChange?.(null);
    if (this.el.contains(document.activeElement) || document.activeElement === document.body) toggle.focus();
  }

  isOpen(name) {
    return this.tab === name;
  }

  onTabKey(event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    const next = this.tab === "people" ? "chat" : "people";
    this.open(next);
    this.tabs[next].tab.focus();
  }
}

/**
 * The People tab. `render` is given plain rows; hosts get a menu button on
 * everyone else's row, and Admit / Deny on the lobby's rows.
 */
export class PeopleView {
  constructor({ onCommand, onAdmit, onDeny, onAdmitAll }) {
    this.list = $("people-list");
    this.lobbyList = $("lobby-list");
    this.menu = new PersonMenu({ onCommand });
    this.onAdmit = onAdmit;
    this.onDeny = onDeny;
    $("admit-all").addEventListener("click", () => onAdmitAll?.());
    this.busy = new Set(); // participant ids with an action in flight
  }

  /** Everyone in the meeting: `self` first, then the others by name. */
  render({ self, others, isHost, roomName }) {
    const rows = [self, ...[...others].sort((a, b) => String(a.name).localeCompare(String(b.name)))];
    $("people-count").textContent = String(rows.length);
    const focused = document.activeElement?.closest?.("[data-participant-id]")?.dataset.participantId;
    const keep = new Set();
    for (const person of rows) {
      if (!person) continue;
      keep.add(person.participant_id);
      const row = this.personRow(person, { isSelf: person === self, isHost, roomName });
      const existing = this.list.querySelector(`li[data-participant-id="${CSS.escape(person.participant_id)}"]`);
      if (existing) existing.replaceWith(row);
      else this.list.append(row);
    }
    for (const row of [...this.list.children]) if (!keep.has(row.dataset.participantId)) row.remove();
    // Keep the order: self, then by name.
    for (const person of rows) {
      const row = this.list.querySelector(`li[data-participant-id="${CSS.escape(person.participant_id)}"]`);
      if (row) this.list.append(row);
    }
    if (focused) {
      this.list.querySelector(`li[data-participant-id="${CSS.escape(focused)}"] .icon-btn`)?.focus();
    }
    this.menu.refresh(rows);
  }

  personRow(person, { isSelf, isHost, roomName }) {
    const li = document.createElement("li");
    li.className = "person";
    li.dataset.participantId = person.participant_id;
    li.dataset.role = person.role || "participant";
    li.append(avatar(person.participant_id, person.name));
    const text = document.createElement("div");
    text.className = "person-text";
    const name = document.createElement("span");
    name.className = "person-name";
    name.textContent = isSelf ? `${person.name} (you)` : person.name || "Guest";
    const meta = document.createElement("span");
    meta.className = "person-meta";
    const tags = [];
    if (person.role === "host") tags.push("Host");
    else if (person.role === "viewer") tags.push("Viewer");
    if (person.room) tags.push(roomName(person.room));
    meta.textContent = tags.join(" · ");
    text.append(name, meta);
    li.append(text);
    const status = document.createElement("span");
    status.className = "person-status";
    if (person.audio_muted) status.insertAdjacentHTML("beforeend", `<span class="status-icon" role="img" aria-label="Microphone muted">${svg("i-mic-off")}</span>`);
    if (person.video_muted) status.insertAdjacentHTML("beforeend", `<span class="status-icon" role="img" aria-label="Camera off">${svg("i-cam-off")}</span>`);
    li.append(status);
    if (isHost && !isSelf) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "icon-btn";
      button.setAttribute("aria-haspopup", "menu");
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("aria-label", `Actions for ${person.name || "Guest"}`);
      button.title = "More actions";
      button.disabled = this.busy.has(person.participant_id);
      button.innerHTML = svg("i-more");
      button.addEventListener("click", () => this.menu.toggle(button, person));
      li.append(button);
    }
    return li;
  }

  /** The lobby, for hosts: who waits, with Admit and Deny. */
  renderLobby(waiting, isHost) {
    const show = isHost && waiting.length > 0;
    $("lobby-section").hidden = !show;
    $("lobby-count").textContent = String(waiting.length);
    $("admit-all").hidden = waiting.length < 2;
    this.lobbyList.replaceChildren();
    if (!show) return;
    for (const person of waiting) {
      const li = document.createElement("li");
      li.className = "person person--waiting";
      li.dataset.participantId = person.participant_id;
      li.append(avatar(person.participant_id, person.name));
      const text = document.createElement("div");
      text.className = "person-text";
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = person.name || "Guest";
      const meta = document.createElement("span");
      meta.className = "person-meta";
      meta.textContent = [person.email, waitedFor(person.since) && `waiting ${waitedFor(person.since)}`]
        .filter(Boolean)
        .join(" · ");
      text.append(name, meta);
      const actions = document.createElement("div");
      actions.className = "person-actions";
      const busy = this.busy.has(person.participant_id);
      actions.append(
        this.actionButton("Deny", `Deny ${person.name || "Guest"}`, "btn-ghost", busy, () => this.onDeny(person)),
        this.actionButton("Admit", `Admit ${person.name || "Guest"}`, "btn-primary", busy, () => this.onAdmit(person)),
      );
      li.append(text, actions);
      this.lobbyList.append(li);
    }
  }

  actionButton(text, label, tone, disabled, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `btn btn-sm ${tone}`;
    button.textContent = text;
    button.setAttribute("aria-label", label);
    button.disabled = disabled;
    button.addEventListener("click", onClick);
    return button;
  }
}

/** The host's menu of actions on one participant (a WAI-ARIA menu button). */
class PersonMenu {
  constructor({ onCommand }) {
    this.el = $("person-menu");
    this.items = [...this.el.querySelectorAll(".menu-item")];
    this.onCommand = onCommand;
    this.button = null;
    this.person = null;
    for (const item of this.items) {
      item.addEventListener("click", () => {
        const person = this.person;
        this.close(true);
        if (person) this.onCommand?.(item.dataset.command, person);
      });
    }
    this.el.addEventListener("keydown", (event) => this.onKey(event));
    document.addEventListener("pointerdown", (event) => {
      if (this.person && !this.el.contains(event.target) && event.target.closest?.("button") !== this.button) {
        this.close(false);
      }
    });
    window.addEventListener("resize", () => this.close(false));
  }

  toggle(button, person) {
    if (this.person && this.person.participant_id === person.participant_id) this.close(true);
    else this.open(button, person);
  }

  open(button, person) {
    this.close(false);
    this.button = button;
    this.person = person;
    this.fill(person);
    button.setAttribute("aria-expanded", "true");
    this.el.hidden = false;
    const rect = button.getBoundingClientRect();
    const menu = this.el.getBoundingClientRect();
    const top = rect.bottom + 6 + menu.height > window.innerHeight ? rect.top - menu.height - 6 : rect.bottom + 6;
    this.el.style.top = `${Math.max(8, top)}px`;
    this.el.style.left = `${Math.max(8, rect.right - menu.width)}px`;
    this.enabledItems()[0]?.focus();
  }

  fill(person) {
    for (const item of this.items) {
      const command = item.dataset.command;
      item.hidden = command === "promote" && person.role === "host";
      item.disabled =
        (command === "mute-audio" && Boolean(person.audio_muted)) ||
        (command === "mute-video" && Boolean(person.video_muted));
    }
  }

  /** Re-read the open menu's person after the roster changed; close it if they left. */
  refresh(rows) {
    if (!this.person) return;
    const person = rows.find((row) => row && row.participant_id === this.person.participant_id);
    if (!person) {
      this.close(false);
      return;
    }
    this.person = person;
    this.fill(person);
    const button = document.querySelector(
      `#people-list li[data-participant-id="${CSS.escape(person.participant_id)}"] .icon-btn`,
    );
    if (button && button !== this.button) {
      this.button = button;
      button.setAttribute("aria-expanded", "true");
    }
  }

  close(returnFocus) {
    if (!this.person) return;
    this.el.hidden = true;
    this.button?.setAttribute("aria-expanded", "false");
    if (returnFocus) this.button?.focus();
    this.button = null;
    this.person = null;
  }

  enabledItems() {
    return this.items.filter((item) => !item.hidden && !item.disabled);
  }

  onKey(event) {
    const items = this.enabledItems();
    const index = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.close(true);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length]?.focus();
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      (event.key === "Home" ? items[0] : items[items.length - 1])?.focus();
    } else if (event.key === "Tab") {
      this.close(false);
    }
  }
}

/** "Someone wants to join" on the stage, for hosts whose People tab is closed. */
export class KnockCard {
  constructor({ onAdmit, onDeny, onAdmitAll, onViewAll }) {
    this.el = $("knock");
    this.waiting = [];
    $("knock-admit").addEventListener("click", () =>
      this.waiting.length === 1 ? onAdmit(this.waiting[0]) : onAdmitAll(),
    );
    $("knock-deny").addEventListener("click", () => this.waiting.length === 1 && onDeny(this.waiting[0]));
    $("knock-view").addEventListener("click", () => onViewAll());
  }

  render(waiting, visible) {
    this.waiting = waiting;
    this.el.hidden = !visible || waiting.length === 0;
    if (this.el.hidden) return;
    const single = waiting.length === 1;
    $("knock-title").textContent = single
      ? `${waiting[0].name || "Someone"} wants to join`
      : `${waiting.length} people want to join`;
    $("knock-detail").textContent = single
      ? waiting[0].email || "Waiting in the lobby"
      : waiting.map((person) => person.name || "Guest").join(", ");
    $("knock-deny").hidden = !single;
    $("knock-view").hidden = single;
    $("knock-admit").textContent = single ? "Admit" : "Admit all";
    $("knock-admit").setAttribute("aria-label", single ? `Admit ${waiting[0].name || "Guest"}` : "Admit everyone waiting");
    $("knock-deny").setAttribute("aria-label", single ? `Deny ${waiting[0].name || "Guest"}` : "Deny");
  }
}
