"""Builds the ``getifaddrs`` LD_PRELOAD shim (``getifaddrs_shim.c``) for the Janus process.

Janus 1.1.2 leaves interfaces flagged loopback out when it gathers ICE
candidates, so on a loopback-only benchmark it would offer none; the shim
makes ``lo`` look like an ordinary interface and every other one look down.
It is compiled with gcc once per source version, into the folder given.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["SHIM_SOURCE", "ShimBuildError", "build_shim"]

SHIM_SOURCE = Path(__file__).with_name("getifaddrs_shim.c")
BUILD_TIMEOUT_S = 60.0


class ShimBuildError(RuntimeError):
    """gcc is missing or could not compile the shim."""


async def build_shim(folder: Path) -> Path:
    """The compiled shim in ``folder`` (built now unless this source's build is there)."""
    source = SHIM_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    library = folder / f"getifaddrs_shim-{digest}.so"
    if library.exists():
        return library
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ShimBuildError("the Janus target needs gcc to build its getifaddrs shim")
    os.makedirs(folder, exist_ok=True)
    partial = library.with_suffix(".so.partial")
    process = await asyncio.create_subprocess_exec(
        gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SHIM_SOURCE), "-ldl",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), BUILD_TIMEOUT_S)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise ShimBuildError(f"gcc took more than {BUILD_TIMEOUT_S:g} s") from exc
    if process.returncode != 0:
        raise ShimBuildError(f"gcc failed ({process.returncode}): {output.decode()[-2000:]}")
    partial.replace(library)  # atomic: a concurrent start sees the whole library or none
    return library
