"""The recorder as a node process runs it: its config slice, storage, pipeline.

Shared by ``townhall serve`` and ``townhall node`` (both host SFU meetings and
record them) and by ``townhall control`` (which reads the same storage for
downloads). Imports the recorder only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from recorder.captions import CaptionConfig
from recorder.config import RecorderConfig
from recorder.pipeline import RecordingPipeline
from recorder.storage import LocalStorage
from recorder.summary import LlmConfig
from recorder.transcription import TranscriptionConfig
from townhall.contract import RecordingEvents

from .config import RecorderSettings

__all__ = ["MeetingNode", "recorder_config", "recording_pipeline", "storage_for"]


class MeetingNode(Protocol):
    """What the pipeline needs of the SFU node it records for."""

    async def send(self, meeting_id: str, message: dict[str, Any], to: Any) -> None: ...

    def roster(self, meeting_id: str) -> list[dict[str, Any]]: ...


def recorder_config(settings: RecorderSettings, data_dir: Path) -> RecorderConfig:
    return RecorderConfig(
        storage_root=settings.storage_root or data_dir / "recordings",
        encryption_key=settings.encryption_key,
        retention_days=settings.retention_days,
        track_queue_packets=settings.track_queue_packets,
        reorder_window_packets=settings.reorder_window_packets,
        disk_reserve_bytes=settings.disk_reserve_bytes,
        mix_latency_s=settings.mix_latency_s,
    )


def storage_for(config: RecorderConfig) -> LocalStorage:
    return LocalStorage(config.storage_root, config.key)


def recording_pipeline(
    settings: RecorderSettings,
    data_dir: Path,
    events: RecordingEvents,
    node: MeetingNode,
    storage: LocalStorage | None = None,
) -> RecordingPipeline:
    """The node's Recorder, reporting to ``events``, sending captions through ``node``."""
    config = recorder_config(settings, data_dir)

    async def caption(meeting_id: str, caption: dict[str, Any]) -> None:
        await node.send(meeting_id, {"type": "caption", **caption}, "all")

    return RecordingPipeline(
        config,
        events,
        storage=storage or storage_for(config),
        transcription=_transcription(settings),
        captions=CaptionConfig(language=settings.language),
        llm=_llm(settings),
        on_caption=caption,
        speaking_time=lambda meeting_id: {
            p["participant_id"]: p["speaking_s"] for p in node.roster(meeting_id)
        },
    )


def _transcription(settings: RecorderSettings) -> TranscriptionConfig:
    return TranscriptionConfig(
        model=settings.model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        workers=settings.workers,
        queue_size=settings.queue_size,
        beam_size=settings.beam_size,
        language=settings.language,
    )


def _llm(settings: RecorderSettings) -> LlmConfig | None:
    if settings.llm_base_url is None or settings.llm_model is None:
        return None
    return LlmConfig(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key or "not-needed",
        timeout_s=settings.llm_timeout_s,
    )
