"""One recorded track: the SFU-side tap (a bounded queue) and the writer-side pipeline.

:class:`QueuedTap` is what the SFU calls on its event loop: ``packet`` appends a
tuple to a deque, or drops and counts when the queue is full or the recording
is over. Nothing else happens on the loop.

:class:`TrackRecording` runs in the session's writer thread: it drains the
queue through the reorder buffer and the depacketizer, places each frame on
the file's timeline (:class:`Timeline`), fills audio gaps (mute, loss, DTX)
with Opus silence so the Ogg stream stays contiguous, and hands frames to its
:class:`TrackWriter`, which creates the file at the first usable frame (a
keyframe, for video). The file thus starts at the participant's first packet;
``start_offset_s`` says where that is on the recording's timeline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from townhall.contract import TappedTrack

from .depacketize import (
    DepacketizerStats,
    EncodedFrame,
    ReorderBuffer,
    depacketizer_for,
)
from .errors import MalformedPayload, RecordingWriteError, StorageError
from .mixer import MIX_RATE, AudioMixer
from .storage import Storage
from .writers import OPUS_SILENCE_SAMPLES, Container, TrackWriter

__all__ = ["QueuedTap", "Timeline", "TrackRecording"]

_TS_MOD = 1 << 32
# A timestamp jump this much larger than the time that passed between arrivals
# is a restart of the sender's clock (a new stream), not media time.
_RESTART_SLACK_S = 10.0
# After an unmute, a timestamp this much behind the time that passed means the
# sender's clock stood still during the mute.
_RESYNC_TOLERANCE_S = 0.5
# Packets whose arrival is used to estimate where the track starts.
_OFFSET_SAMPLE_PACKETS = 500

Packet = tuple[int, int, bool, bytes, float]  # sequence number, timestamp, marker, payload, arrival


class QueuedTap:
    """The ``TrackTap`` given to the SFU: queues packets, never blocks, never does I/O."""

    __slots__ = ("packets", "limit", "dropped", "accepting", "closed_at", "mutes")

    def __init__(self, limit: int) -> None:
        self.packets: deque[Packet] = deque()
        self.limit = limit
        self.dropped = 0  # packets refused because the queue was full
        self.accepting = True
        self.closed_at: float | None = None
        self.mutes: list[tuple[float, bool]] = []

    def packet(
        self,
        sequence_number: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        arrival_s: float,
    ) -> None:
        """Queue one RTP payload (called on the SFU's loop for every packet)."""
        if not self.accepting:
            return
        if len(self.packets) >= self.limit:
            self.dropped += 1
            return
        self.packets.append((sequence_number, timestamp, marker, payload, arrival_s))

    def muted(self, muted: bool, at_s: float) -> None:
        """Note a mute or unmute (the packets simply stop and resume)."""
        self.mutes.append((at_s, muted))

    def close(self, at_s: float) -> None:
        """The track ended: the writer closes its file once the queue is drained."""
        if self.closed_at is None:
            self.closed_at = at_s
        self.accepting = False


class Timeline:
    """A track's RTP timestamps as file pts: unwrapped, starting at 0, rebased on restarts."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.restarts = 0
        self._origin = 0  # extended timestamp of pts 0
        self._last: tuple[int, int, float] | None = None  # raw timestamp, extended, arrival

    def place(self, timestamp: int, arrival_s: float, min_step: int, resync: bool = False) -> int:
        """The pts of a frame; ``min_step`` is the least a restart may advance it.

        ``resync``: the track was unmuted since the last frame. A sender whose
        clock stood still while muted (aiortc's tracks count samples) would
        otherwise have its media after the mute pulled earlier; there the
        time that passed between arrivals wins.
        """
        last = self._last
        if last is None:
            self._origin = timestamp
            self._last = (timestamp, timestamp, arrival_s)
            return 0
        raw, extended, arrival = last
        diff = (timestamp - raw) % _TS_MOD
        if diff >= _TS_MOD // 2:
            diff -= _TS_MOD
        ext = extended + diff
        elapsed = max(arrival_s - arrival, 0.0)
        stood_still = resync and diff < (elapsed - _RESYNC_TOLERANCE_S) * self.clock_rate
        if stood_still or diff < 0 or diff > (elapsed + _RESTART_SLACK_S) * self.clock_rate:
            # The sender's clock restarted: continue from where the media was,
            # by the time that passed.
            self.restarts += 1
            step = max(round(elapsed * self.clock_rate), min_step)
            self._origin += ext - (extended + step)
        self._last = (timestamp, ext, arrival_s)
        return ext - self._origin


class TrackRecording:
    """Writer-thread side of one track: queue -> frames -> file."""

    def __init__(
        self,
        *,
        tap: QueuedTap,
        track: TappedTrack,
        name: str,
        container: Container,
        storage: Storage,
        encrypt: bool,
        on_full: Callable[[], bool],
        started_at: float,
        reorder_window: int,
        silence: Callable[[], bytes],
        mixer: AudioMixer | None,
    ) -> None:
        self.tap = tap
        self.track = track
        self.name = name
        self.container = container
        self.stats = DepacketizerStats()
        self.finished = False
        # Set (from any thread) when the recording must stop writing at once.
        self.halted = False
        self.writer: TrackWriter | None = None
        self.start_offset_s = 0.0
        self.silence_samples = 0
        self.frames_refused = 0
        self.newest_arrival = 0.0
        self._storage = storage
        self._encrypt = encrypt
        self._on_full = on_full
        self._started_at = started_at
        self._silence = silence
        self._mixer = mixer if track.kind == "audio" else None
        self._audio = track.codec.lower() == "opus"
        self._rate = 48000 if self._audio else track.clock_rate
        self._timeline = Timeline(self._rate)
        self._next_pts = 0  # audio: where the next frame must start
        self._shift = 0  # audio: sub-frame gaps closed up so far
        self._first_ts: int | None = None
        self._min_offset = float("inf")
        self._offset_samples = 0
        self._mix_start = 0
        self._gap_after_padding = False
        self._mutes_seen = 0
        self._reorder: ReorderBuffer[Packet] = ReorderBuffer(
            reorder_window, self._ordered, self.stats
        )
        depacketizer = depacketizer_for(track.codec, self._frame, self.stats)
        if depacketizer is None:
            raise ValueError(f"no depacketizer for {track.codec}")
        self._depacketizer = depacketizer

    @property
    def drained(self) -> bool:
        """The track ended and every queued packet has been taken."""
        return self.tap.closed_at is not None and not self.tap.packets

    def drain(self, budget: int) -> int:
        """Process up to ``budget`` queued packets; RecordingWriteError if the file fails."""
        packets = self.tap.packets
        done = 0
        while done < budget and packets and not self.halted:
            packet = packets.popleft()
            done += 1
            self.stats.packets += 1
            if self._offset_samples < _OFFSET_SAMPLE_PACKETS:
                self._sample_offset(packet[1], packet[4])
            self._reorder.push(packet[0], packet)
        if done:
            self.newest_arrival = max(self.newest_arrival, packet[4])
        return done

    def finish(self) -> None:
        """Flush what is held and close the file (the track ended or the recording stops)."""
        if self.finished:
            return
        self.finished = True
        try:
            self._reorder.flush()
            self._depacketizer.flush()
        finally:
            if self.writer is not None:
                self.writer.close()

    def abort(self) -> None:
        """Close the file as it is, writing nothing more (the recording failed)."""
        self.finished = True
        self.tap.accepting = False
        if self.writer is not None:
            try:
                self.writer.close(flush=False)
            except RecordingWriteError:
                pass

    def describe(self) -> dict[str, Any]:
        """This track's manifest entry, without size and checksum (added once closed)."""
        writer = self.writer
        stats = self.stats
        entry: dict[str, Any] = {
            "participant_id": self.track.participant_id,
            "name": self.track.participant_name,
            "track_id": self.track.track_id,
            "kind": self.track.kind,
            "source": self.track.source,
            "codec": self.track.codec.lower(),
            "container": self.container.muxer,
            "path": self.name if writer is not None else None,
            "start_offset_s": round(self.start_offset_s, 3),
            "duration_s": round(writer.end_pts / self._rate, 3) if writer else 0.0,
            "frames": writer.frames if writer else 0,
            "frames_dropped": stats.frames_dropped
            + self.frames_refused
            + (writer.refused if writer else 0),
            "packets": stats.packets,
            "packets_lost": stats.packets_lost,
            "packets_late": stats.packets_late,
            "packets_malformed": stats.packets_malformed,
            "packets_padding": stats.packets_padding,
            "packets_dropped_queue_full": self.tap.dropped,
            "mutes": self._mutes(),
        }
        if self._audio:
            entry["silence_inserted_s"] = round(self.silence_samples / self._rate, 3)
            entry["channels"] = writer.channels if writer else 0
        elif writer is not None:
            entry["width"], entry["height"] = writer.width, writer.height
        if self._timeline.restarts:
            entry["timestamp_restarts"] = self._timeline.restarts
        return entry

    def _mutes(self) -> list[list[float | None]]:
        spans: list[list[float | None]] = []
        for at_s, muted in sorted(self.tap.mutes):
            at = round(at_s - self._started_at, 3)
            if muted and (not spans or spans[-1][1] is not None):
                spans.append([at, None])
            elif not muted and spans and spans[-1][1] is None:
                spans[-1][1] = at
        return spans

    def _sample_offset(self, timestamp: int, arrival_s: float) -> None:
        # Arrival = send time + delay >= send time: the least (arrival - media
        # time) over many packets is the best guess of when media time 0 was sent.
        if self._first_ts is None:
            self._first_ts = timestamp
        diff = (timestamp - self._first_ts) % _TS_MOD
        if diff >= _TS_MOD // 2:
            diff -= _TS_MOD
        self._min_offset = min(self._min_offset, arrival_s - diff / self._rate)
        self._offset_samples += 1

    def _ordered(self, packet: Packet, gap: bool) -> None:
        _, timestamp, marker, payload, arrival = packet
        if not payload:
            # Padding only (bandwidth probing): it holds a sequence number, no media.
            self.stats.packets_padding += 1
            self._gap_after_padding = self._gap_after_padding or gap
            return
        if self._gap_after_padding:
            gap, self._gap_after_padding = True, False
        self._depacketizer.push(timestamp, marker, payload, arrival, gap)

    def _frame(self, frame: EncodedFrame) -> None:
        if self.writer is None:
            try:
                if not frame.keyframe:
                    raise MalformedPayload("a file must start with a keyframe")
                self._open(frame)
            except MalformedPayload:
                self.frames_refused += 1
                return
        writer = self.writer
        assert writer is not None
        pts = self._timeline.place(
            frame.timestamp, frame.arrival_s, frame.samples or 1, self._unmuted_before(frame)
        )
        if not self._audio:
            if not writer.write(pts, frame.data, frame.keyframe):
                self.frames_refused += 1
            return
        pts -= self._shift
        gap = pts - self._next_pts
        if gap < 0:
            self.frames_refused += 1  # overlaps what is written: a duplicate
            return
        if gap:
            silence = self._silence()
            count, rest = divmod(gap, OPUS_SILENCE_SAMPLES)
            for i in range(count):
                writer.write(self._next_pts + i * OPUS_SILENCE_SAMPLES, silence, True, 960)
            self.silence_samples += count * OPUS_SILENCE_SAMPLES
            # A gap shorter than a silence frame is closed up instead.
            self._shift += rest
            pts -= rest
        writer.write(pts, frame.data, True, frame.samples)
        self._next_pts = pts + frame.samples
        if self._mixer is not None:
            self._mixer.add(self.track.track_id, self._mix_start + pts, frame.data)

    def _unmuted_before(self, frame: EncodedFrame) -> bool:
        """Whether an unmute happened between the previous frame and this one."""
        mutes = self.tap.mutes
        unmuted = False
        while self._mutes_seen < len(mutes) and mutes[self._mutes_seen][0] <= frame.arrival_s:
            unmuted = unmuted or not mutes[self._mutes_seen][1]
            self._mutes_seen += 1
        return unmuted

    def _open(self, frame: EncodedFrame) -> None:
        """Create the file at the first usable frame, and fix where it starts."""
        if self._first_ts is not None and self._min_offset != float("inf"):
            diff = (frame.timestamp - self._first_ts) % _TS_MOD
            if diff >= _TS_MOD // 2:
                diff -= _TS_MOD
            start = self._min_offset + diff / self._rate
        else:
            start = frame.arrival_s
        self.start_offset_s = max(start - self._started_at, 0.0)
        self._mix_start = round(self.start_offset_s * MIX_RATE)
        try:
            file = self._storage.create(self.name, encrypt=self._encrypt, on_full=self._on_full)
        except (OSError, StorageError) as exc:
            raise RecordingWriteError(f"cannot create {self.name}: {exc}") from exc
        try:
            self.writer = TrackWriter(file, self.container, self.track.codec, self._rate, frame)
        except MalformedPayload:
            # This keyframe cannot start a file; the next one may.
            self._storage.delete(self.name)
            raise
