"""A meeting's recording on this node: every forwarded track tapped into a session.

The SFU does not write files: it hands each track's packets, as forwarded, to
a ``RecordingSession`` of the node's ``Recorder`` (see ``townhall.contract``).
Tracks published while the recording runs are tapped as they start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from townhall.contract import RecordingSession, TappedTrack, TrackTap

from .forwarder import PublishedTrack

logger = logging.getLogger(__name__)

CLOCK_RATES = {"audio": 48000, "video": 90000}


class RoomRecording:
    """The taps of one running recording, by track."""

    def __init__(
        self,
        meeting_id: str,
        session: RecordingSession,
        name_of: Callable[[str], str],
    ) -> None:
        self.meeting_id = meeting_id
        self.session = session
        self._name_of = name_of
        self._taps: dict[str, tuple[PublishedTrack, TrackTap]] = {}

    @property
    def recording_id(self) -> str:
        return self.session.recording_id

    def tap(self, track: PublishedTrack) -> None:
        """Start recording a track (now being forwarded), unless the session skips it."""
        if track.track_id in self._taps:
            return
        tapped = TappedTrack(
            meeting_id=self.meeting_id,
            participant_id=track.participant_id,
            participant_name=self._name_of(track.participant_id),
            track_id=track.track_id,
            kind=track.kind,
            source=track.source,
            codec=track.codec_name,
            clock_rate=CLOCK_RATES.get(track.kind, 90000),
        )
        try:
            tap = self.session.track(tapped)
        except Exception:  # noqa: BLE001 - the meeting goes on without this file
            logger.exception("recording %s refused track %s", self.recording_id, track.track_id)
            return
        if tap is not None:
            self._taps[track.track_id] = (track, tap)
            track.add_tap(tap)

    def untap_all(self) -> None:
        for track, tap in self._taps.values():
            track.remove_tap(tap)
        self._taps.clear()

    async def stop(self) -> None:
        """Close every tap, then let the recorder finish its files."""
        self.untap_all()
        await self.session.stop()
