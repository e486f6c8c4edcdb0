// The Chat tab: messages with sender and time (private ones marked), the
// recipient picker, the composer (Enter sends, Shift+Enter breaks the line),
// inline errors and the unread count. Messages are keyed by id, so history
// loaded late and live messages merge without doubles.

const $ = (id) => document.getElementById(id);

const GROUP_WINDOW_MS = 3 * 60 * 1000; // consecutive messages this close share a header
const MAX_INPUT_ROWS = 5;

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function sentTime(message) {
  const at = Date.parse(message.sent_at);
  return Number.isFinite(at) ? at : Date.now();
}

export class ChatView {
  /** `onSend(text, to)` returns false when the message could not leave. */
  constructor({ onSend }) {
    this.onSend = onSend;
    this.log = $("chat-log");
    this.scroll = $("chat-scroll");
    this.input = $("chat-input");
    this.to = $("chat-to");
    this.messages = new Map(); // id -> message
    this.selfId = null;
    this.names = new Map(); // participant id -> name, for "privately to ..."
    this.open = false;
    this.unread = 0;
    this.onUnread = null;
    this.pending = []; // texts sent and not yet echoed back, oldest first
    this.enabled = true;

    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => {
      this.showError("");
      this.fitInput();
    });
    this.to.addEventListener("change", () => this.updatePlaceholder());
  }

  setSelf(participantId, name) {
    this.selfId = participantId;
    if (participantId) this.names.set(participantId, name);
  }

  /** Who can be written to privately: everyone else in the meeting. */
  setRecipients(participants) {
    const chosen = this.to.value;
    const options = [new Option("Everyone", "")];
    const sorted = [...participants].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const person of sorted) {
      this.names.set(person.participant_id, person.name);
      options.push(new Option(`${person.name || "Guest"} (privately)`, person.participant_id));
    }
    this.to.replaceChildren(...options);
    const stillThere = options.some((option) => option.value === chosen);
    this.to.value = stillThere ? chosen : "";
    if (!stillThere && chosen) this.showError("That person left; your next message goes to everyone.");
    this.updatePlaceholder();
  }

  updatePlaceholder() {
    const name = this.to.value ? this.names.get(this.to.value) || "them" : "";
    this.input.placeholder = !this.enabled
      ? "You can't send messages here"
      : name
        ? `Message ${name} privately`
        : "Send a message to everyone";
  }

  /** Chat permission: without it the composer is off and says why. */
  setEnabled(enabled, reason = "") {
    this.enabled = enabled;
    this.input.disabled = !enabled;
    this.to.disabled = !enabled;
    $("chat-send").disabled = !enabled;
    $("chat-form").dataset.disabled = String(!enabled);
    if (!enabled) this.showError(reason || "You can't send messages in this meeting.", "info");
    else if ($("chat-error").dataset.tone === "info") this.showError("");
    this.updatePlaceholder();
  }

  send() {
    const text = this.input.value.trim();
    if (!text || !this.enabled) return;
    const to = this.to.value || null;
    if (this.onSend(text, to) === false) {
      this.showError("Not connected: the message was not sent.");
      return;
    }
    this.pending.push(text);
    this.input.value = "";
    this.fitInput();
    this.showError("");
  }

  /** A chat error from the server: said inline, and the refused text comes back. */
  failed(message) {
    this.showError(message);
    // The SFU answers in order: the refused message is the oldest not echoed back.
    const text = this.pending.shift();
    if (text && !this.input.value) {
      this.input.value = text;
      this.fitInput();
    }
  }

  showError(text, tone = "error") {
    const error = $("chat-error");
    const value = String(text || "");
    const nearEnd = this.isNearEnd();
    error.textContent = value && value[0].toUpperCase() + value.slice(1);
    error.dataset.tone = tone;
    error.hidden = !value;
    if (nearEnd) this.scrollToEnd(); // the form grew or shrank: keep the last message in view
  }

  fitInput() {
    this.input.style.height = "auto";
    const line = parseFloat(getComputedStyle(this.input).lineHeight) || 20;
    const padding = 20;
    this.input.style.height = `${Math.min(this.input.scrollHeight, line * MAX_INPUT_ROWS + padding)}px`;
  }

  /** Add one message (live or from history); true when it is new. */
  add(message, { live = true } = {}) {
    if (!this.remember(message)) return false;
    const stored = this.messages.get(this.keyOf(message));
    if (message.sender_id === this.selfId) {
      const index = this.pending.indexOf(message.text);
      if (index >= 0) this.pending.splice(index, 1);
    }
    const last = this.lastShown();
    if (!last || sentTime(stored) >= sentTime(last)) this.append(stored, last);
    else this.draw();
    if (live && !this.open && message.sender_id !== this.selfId) {
      this.unread += 1;
      this.onUnread?.(this.unread);
    }
    return true;
  }

  /** Earlier messages, drawn at once without reading them all out. */
  setHistory(messages) {
    let added = false;
    for (const message of messages) added = this.remember(message) || added;
    if (added) this.draw({ quiet: true });
  }

  keyOf(message) {
    return String(message.id ?? `${message.sender_id}:${message.sent_at}:${message.text}`);
  }

  remember(message) {
    if (!message || typeof message !== "object") return false;
    const id = this.keyOf(message);
    if (this.messages.has(id)) return false;
    this.messages.set(id, { ...message, id });
    return true;
  }

  lastShown() {
    const id = this.log.lastElementChild?.dataset.messageId;
    return id ? this.messages.get(id) : null;
  }

  /** One new message at the end: only it is added (and read out by the live region). */
  append(message, previous) {
    const nearEnd = this.isNearEnd();
    this.log.append(this.item(message, this.groupsWith(previous, message)));
    $("chat-empty").hidden = true;
    if (nearEnd || message.sender_id === this.selfId) this.scrollToEnd();
  }

  groupsWith(previous, message) {
    return Boolean(
      previous &&
        previous.sender_id === message.sender_id &&
        (previous.to ?? null) === (message.to ?? null) &&
        sentTime(message) - sentTime(previous) < GROUP_WINDOW_MS,
    );
  }

  isNearEnd() {
    return this.scroll.scrollHeight - this.scroll.scrollTop - this.scroll.clientHeight < 60;
  }

  setOpen(open) {
    this.open = open;
    if (open) {
      this.unread = 0;
      this.onUnread?.(0);
      this.scrollToEnd();
      if (this.enabled) this.input.focus();
    }
  }

  clear() {
    this.messages.clear();
    this.unread = 0;
    this.onUnread?.(0);
    this.pending = [];
    this.input.value = "";
    this.showError("");
    this.draw();
  }

  /** Redraw the whole log in time order; `quiet`: do not have it read out. */
  draw({ quiet = false } = {}) {
    const nearEnd = this.isNearEnd();
    const sorted = [...this.messages.values()].sort((a, b) => sentTime(a) - sentTime(b));
    const items = sorted.map((message, index) => this.item(message, this.groupsWith(sorted[index - 1], message)));
    if (quiet) this.log.setAttribute("aria-live", "off");
    this.log.replaceChildren(...items);
    if (quiet) setTimeout(() => this.log.setAttribute("aria-live", "polite"), 0);
    $("chat-empty").hidden = sorted.length > 0;
    if (quiet || nearEnd || sorted[sorted.length - 1]?.sender_id === this.selfId) this.scrollToEnd();
  }

  item(message, grouped) {
    const mine = message.sender_id === this.selfId;
    const li = document.createElement("li");
    li.className = "chat-message";
    li.dataset.mine = String(mine);
    li.dataset.private = String(Boolean(message.to));
    li.dataset.grouped = String(Boolean(grouped));
    li.dataset.messageId = message.id;
    if (!grouped) {
      const head = document.createElement("div");
      head.className = "chat-head";
      const sender = document.createElement("span");
      sender.className = "chat-sender";
      sender.textContent = mine ? "You" : message.sender_name || "Guest";
      const time = document.createElement("time");
      time.className = "chat-time";
      time.dateTime = message.sent_at || "";
      time.textContent = TIME_FORMAT.format(sentTime(message));
      head.append(sender, time);
      li.append(head);
      if (message.to) {
        const tag = document.createElement("span");
        tag.className = "chat-private";
        tag.innerHTML = '<svg class="icon" aria-hidden="true"><use href="#i-lock"/></svg>';
        tag.append(mine ? `Privately to ${this.names.get(message.to) || "someone"}` : "Privately to you");
        li.append(tag);
      }
    }
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = message.text;
    li.append(text);
    return li;
  }

  scrollToEnd() {
    this.scroll.scrollTop = this.scroll.scrollHeight;
  }
}
