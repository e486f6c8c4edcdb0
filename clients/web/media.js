// Local media: our camera and microphone (with fallbacks when one is missing
// or blocked), their mute state, and screen capture.

const VIDEO_CONSTRAINTS = { width: 640, height: 360 };
const SCREEN_CONSTRAINTS = { video: { frameRate: 15 }, audio: false };

/** Our camera and microphone, and whether each is muted. */
export class LocalMedia {
  constructor() {
    this.stream = null;
    this.audioMuted = false;
    this.videoMuted = false;
    this.problem = "";
  }

  get audioTrack() {
    return this.stream?.getAudioTracks()[0] || null;
  }

  get videoTrack() {
    return this.stream?.getVideoTracks()[0] || null;
  }

  /** Get camera and microphone, falling back to either alone, then to nothing. */
  async acquire() {
    if (this.stream && this.stream.getTracks().some((track) => track.readyState === "live")) return this.stream;
    this.problem = "";
    if (!navigator.mediaDevices?.getUserMedia) {
      this.problem = "Camera and microphone need a secure (https) page.";
      this.stream = new MediaStream();
      return this.stream;
    }
    let lastError = null;
    for (const constraints of [
      { audio: true, video: VIDEO_CONSTRAINTS },
      { audio: true, video: false },
      { audio: false, video: VIDEO_CONSTRAINTS },
    ]) {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (!constraints.video) this.problem = "No camera available: others will see your initials.";
        if (!constraints.audio) this.problem = "No microphone available: others will not hear you.";
        break;
      } catch (error) {
        lastError = error;
        if (error?.name === "NotAllowedError") break; // asking again will not help
      }
    }
    if (!this.stream) {
      this.stream = new MediaStream();
      this.problem =
        lastError?.name === "NotAllowedError"
          ? "Camera and microphone are blocked. You can still join to watch and listen."
          : "No camera or microphone found. You can still join to watch and listen.";
    }
    this.apply();
    return this.stream;
  }

  apply() {
    if (this.audioTrack) this.audioTrack.enabled = !this.audioMuted;
    if (this.videoTrack) this.videoTrack.enabled = !this.videoMuted;
  }

  setMuted(kind, muted) {
    if (kind === "audio") this.audioMuted = muted;
    else this.videoMuted = muted;
    this.apply();
  }

  /** Release the devices (the camera light goes off). */
  stop() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
  }
}

/** Ask the browser for a screen, window or tab; null when the person said no. */
export async function captureScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    throw new Error("This browser cannot share a screen.");
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia(SCREEN_CONSTRAINTS);
    const [track] = stream.getVideoTracks();
    if (track) track.contentHint = "detail";
    return track || null;
  } catch (error) {
    if (error?.name === "NotAllowedError" || error?.name === "AbortError") return null;
    throw error;
  }
}
