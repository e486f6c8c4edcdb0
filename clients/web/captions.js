// Live captions over the bottom of the stage. The server pushes `caption`
// frames ({participant_id, name, text, start, end, final}) while a recording
// with live captions runs; this page shows them only when the CC toggle is
// on. A speaker's words in progress (not final) show greyed and are replaced
// by the next caption from the same speaker; each line fades a few seconds
// after its last change. Screen readers get final captions only, once each.

const $ = (id) => document.getElementById(id);

const STORAGE_KEY = "townhall.captions";
const MAX_LINES = 3;
const FINAL_LINGER_MS = 6000;
const PARTIAL_LINGER_MS = 10000; // words in progress that are never finished
const FADE_MS = 600;
const MAX_ANNOUNCED = 20;
const MAX_TEXT_CHARS = 400;
const TOAST_GAP_PX = 10;

export class CaptionsView {
  /** `hint(text)` tells the person something about captions (a toast). */
  constructor({ hint }) {
    this.hint = hint;
    this.button = $("captions-button");
    this.region = $("captions");
    this.log = $("captions-log");
    this.lines = []; // {el, participantId, final, timer}, oldest first
    this.selfId = null;
    this.recording = false;
    this.offeredHint = false;
    let stored = null;
    try {
      stored = localStorage.getItem(STORAGE_KEY);
    } catch {
      // storage refused (private mode): the toggle starts off
    }
    this.on = stored === "on";
    this.button.addEventListener("click", () => this.toggle());
    // Toasts sit above the captions rather than on top of them.
    new ResizeObserver(() => this.makeRoom()).observe(this.region);
    window.addEventListener("resize", () => this.makeRoom());
    this.render();
  }

  /** Whose captions read "You", and whether a recording runs (for the hint). */
  setContext({ selfId, recording }) {
    this.selfId = selfId;
    this.recording = Boolean(recording);
  }

  toggle() {
    this.on = !this.on;
    try {
      localStorage.setItem(STORAGE_KEY, this.on ? "on" : "off");
    } catch {
      // not remembered; it still works for this page
    }
    if (!this.on) this.clear();
    this.render();
    if (this.on && !this.recording) {
      this.hint("Captions on. They appear while the meeting is recorded with live captions.");
    } else {
      this.hint(this.on ? "Captions on" : "Captions off");
    }
  }

  /** One `caption` frame. */
  add(caption) {
    const text = String(caption.text || "").trim().slice(-MAX_TEXT_CHARS);
    const participantId = String(caption.participant_id || "");
    if (!text) return;
    if (!this.on) {
      if (!this.offeredHint) {
        this.offeredHint = true;
        this.hint("Live captions are available. Turn them on with CC.");
      }
      return;
    }
    const final = caption.final !== false;
    const name = participantId && participantId === this.selfId ? "You" : String(caption.name || "Someone");
    let line = this.lines.find((item) => item.participantId === participantId && !item.final);
    if (!line) {
      line = this.newLine(participantId);
      if (this.lines.length > MAX_LINES) this.drop(this.lines[0], false);
    }
    line.final = final;
    line.el.dataset.final = String(final);
    line.nameEl.textContent = `${name}:`;
    line.textEl.textContent = text;
    this.linger(line, final ? FINAL_LINGER_MS : PARTIAL_LINGER_MS);
    if (final) this.announce(`${name}: ${text}`);
    this.render();
  }

  newLine(participantId) {
    const el = document.createElement("p");
    el.className = "caption";
    el.dataset.participantId = participantId;
    const nameEl = document.createElement("span");
    nameEl.className = "caption-name";
    const textEl = document.createElement("span");
    textEl.className = "caption-text";
    el.append(nameEl, " ", textEl);
    this.region.append(el);
    const line = { el, nameEl, textEl, participantId, final: false, timer: null };
    this.lines.push(line);
    return line;
  }

  linger(line, ms) {
    clearTimeout(line.timer);
    line.el.classList.remove("caption--leaving");
    line.timer = setTimeout(() => this.drop(line, true), ms);
  }

  drop(line, fade) {
    clearTimeout(line.timer);
    this.lines = this.lines.filter((item) => item !== line);
    if (!fade) {
      line.el.remove();
      this.render();
      return;
    }
    line.final = true; // a fading line is never updated again
    line.el.classList.add("caption--leaving");
    line.timer = setTimeout(() => {
      line.el.remove();
      this.render();
    }, FADE_MS);
  }

  /** Tell the stylesheet how far up the captions reach, so that toasts stay above them. */
  makeRoom() {
    const top = this.region.hidden ? null : this.region.getBoundingClientRect().top;
    const clearance = top === null ? 0 : Math.ceil(window.innerHeight - top + TOAST_GAP_PX);
    document.documentElement.style.setProperty("--captions-clearance", `${clearance}px`);
  }

  announce(text) {
    const item = document.createElement("li");
    item.textContent = text;
    this.log.append(item);
    while (this.log.children.length > MAX_ANNOUNCED) this.log.firstElementChild.remove();
  }

  /** Forget every caption (toggle off, session over). */
  clear() {
    for (const line of this.lines) clearTimeout(line.timer);
    this.lines = [];
    this.region.replaceChildren();
    this.log.replaceChildren();
    this.render();
  }

  /** A new session: captions may be offered again. */
  reset() {
    this.clear();
    this.offeredHint = false;
    this.recording = false;
  }

  render() {
    this.button.setAttribute("aria-pressed", String(this.on));
    this.button.dataset.active = String(this.on);
    const label = this.on ? "Turn off captions" : "Turn on captions";
    this.button.setAttribute("aria-label", label);
    this.button.title = label;
    this.region.hidden = !this.on || this.region.childElementCount === 0;
  }

  /** What tests and people debugging see on window.townhall. */
  snapshot() {
    return {
      on: this.on,
      lines: [...this.region.children].map((el) => ({
        participantId: el.dataset.participantId,
        text: el.textContent,
        final: el.dataset.final === "true",
      })),
    };
  }
}
