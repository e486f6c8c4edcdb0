"""What Linux says about a process (CPU time, memory) and about the machine, from /proc."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "CpuSample",
    "MachineCpu",
    "MachineInfo",
    "UdpCounters",
    "cpu_sample",
    "machine_cpu",
    "machine_info",
    "memory_kib",
    "udp_counters",
    "udp_totals",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """User and system CPU seconds a process (all its threads) has used, and when we looked."""

    pid: int
    user_s: float
    system_s: float
    at_s: float  # time.monotonic() of the reading

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s


def cpu_sample(pid: int, at_s: float) -> CpuSample:
    """utime and stime of ``pid`` from /proc/<pid>/stat (fields 14, 15, in clock ticks)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state), so field n is fields[n - 3].
    utime, stime = int(fields[11]), int(fields[12])
    return CpuSample(pid, utime / _CLOCK_TICKS, stime / _CLOCK_TICKS, at_s)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of ``pid``, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@dataclass(frozen=True)
class MachineInfo:
    """Where a measurement ran."""

    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    aiortc: str
    av: str
    pylibsrtp: str

    def describe(self) -> str:
        return (
            f"{self.cpus} CPU ({self.cpu_model}), {self.memory_gib:.1f} GiB RAM, "
            f"Linux {self.kernel}, Python {self.python}, aiortc {self.aiortc}, "
            f"PyAV {self.av}, pylibsrtp {self.pylibsrtp}"
        )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def machine_info() -> MachineInfo:
    """CPU count (what ``nproc`` says), model, RAM and the versions that matter."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
            break
    return MachineInfo(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=model,
        memory_gib=memory_kb / 1024 / 1024,
        kernel=platform.release(),
        python=sys.version.split()[0],
        aiortc=_version("aiortc"),
        av=_version("av"),
        pylibsrtp=_version("pylibsrtp"),
    )


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


@dataclass(frozen=True)
class UdpCounters:
    """A process's UDP sockets: datagrams dropped on each (by inode), bytes queued now."""

    drops_by_socket: dict[int, int]
    receive_queue_bytes: int

    @property
    def sockets(self) -> int:
        return len(self.drops_by_socket)

    def drops_since(self, earlier: UdpCounters) -> int:
        """Drops since ``earlier`` on the sockets open now (a new socket counts from 0)."""
        return sum(
            drops - earlier.drops_by_socket.get(inode, 0)
            for inode, drops in self.drops_by_socket.items()
        )


def udp_counters(pids: list[int]) -> dict[int, UdpCounters]:
    """Per process, from /proc/net/udp{,6} (this network namespace) and /proc/<pid>/fd.

    A socket's ``drops`` counts datagrams the kernel discarded on it, mostly
    because its receive buffer was full: the reader fell behind.
    """
    rows: dict[int, tuple[int, int]] = {}  # inode -> (drops, rx_queue)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode ref ptr drops
            rx_queue = int(fields[4].partition(":")[2], 16)
            rows[int(fields[9])] = (int(fields[12]), rx_queue)
    result: dict[int, UdpCounters] = {}
    for pid in pids:
        mine = {inode: rows[inode] for inode in _socket_inodes(pid) if inode in rows}
        result[pid] = UdpCounters(
            drops_by_socket={inode: drops for inode, (drops, _) in mine.items()},
            receive_queue_bytes=sum(queued for _, queued in mine.values()),
        )
    return result


def udp_totals() -> dict[str, int]:
    """The namespace's UDP counters from /proc/net/snmp (InErrors, RcvbufErrors, ...)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [fields for fields in lines if fields and fields[0] == "Udp:"]
    if len(udp) < 2:
        return {}
    return {name: int(value) for name, value in zip(udp[0][1:], udp[1][1:], strict=True)}


@dataclass(frozen=True)
class MachineCpu:
    """All CPUs' time since boot from /proc/stat's ``cpu`` line, in seconds."""

    busy_s: float  # user + nice + system + irq + softirq
    idle_s: float  # idle + iowait
    steal_s: float  # taken by the hypervisor for other guests


def machine_cpu() -> MachineCpu:
    """The machine-wide CPU counters now (not per namespace: every process counts)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            values = [int(v) / _CLOCK_TICKS for v in line.split()[1:]]
            user, nice, system, idle, iowait, irq, softirq, steal = (values + [0.0] * 8)[:8]
            return MachineCpu(user + nice + system + irq + softirq, idle + iowait, steal)
    raise RuntimeError("/proc/stat has no 'cpu' line")
