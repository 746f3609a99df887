"""Shared helpers of the speed benchmarks: interleaved repeats, medians, machine facts, peak memory, output.

The machine these run on is shared and loaded: absolute times drift by large factors from minute to
minute, and OpenMP threads that spin while other processes hold the cores make a step up to 100x slower.
So every comparison here runs its variants side by side in one process, interleaved (A, B, C, A, B, C, ...),
reports the median of each and, as the headline, their ratios; and every result names the torch thread
count and the load average at its start and end.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def set_threads(threads: int) -> int:
    """Fix torch's intra-op (and inter-op) thread count; returns what torch then reports."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (it can be set only once per process)
        pass
    return torch.get_num_threads()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} logical CPUs)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(wanted: tuple[str, ...] = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in wanted if f in have) or "none of " + " ".join(wanted)
    except OSError:
        pass
    return "unknown"


def timed_once(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, progress: bool = True
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds per call of each variant: ``warmup`` untimed rounds, then ``repeats`` rounds in which every
    variant runs once, in the given order (A, B, C, A, B, C, ...). Returns the times and each variant's
    last result."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, object] = {}
    for _ in range(warmup):
        for name, fn in variants.items():
            results[name] = fn()
    for r in range(repeats):
        for name, fn in variants.items():
            seconds, results[name] = timed_once(fn)
            times[name].append(seconds)
        if progress:
            print(f"  round {r + 1}/{repeats}: load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    return times, results


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'min-max' of the repeats, to show how noisy a median is."""
    return f"{min(values):.3g}-{max(values):.3g}"


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status ("VmHWM", "VmRSS") in MiB; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process' peak resident memory so far (MiB): VmHWM, else ru_maxrss (KiB on Linux)."""
    peak = proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process' resident memory now (MiB); NaN where /proc is missing."""
    rss = proc_status_mb("VmRSS")
    return rss if rss is not None else float("nan")


def cpu_minutes() -> float:
    """CPU time (user + system) of this process and its finished children so far, in minutes."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total / 60


def header(title: str, threads: int, load_start: str, load_end: str, extra: list[str] | None = None) -> str:
    import torch

    lines = [
        f"# {title}",
        "",
        f"- command: `{' '.join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; flags: {cpu_flags()})",
        f"- torch {torch.__version__}, {threads} torch thread(s)",
        f"- load average at start: {load_start}",
        f"- load average at end: {load_end}",
        f"- CPU time of this run: {cpu_minutes():.1f} min (this process and its children)",
        *(extra or []),
        "",
    ]
    return "\n".join(lines)


def markdown_table(columns: list[str], rows: list[list[object]], align: str | None = None) -> str:
    """A markdown table; ``align`` is one character per column, 'l' or 'r' (default: first left)."""
    align = align or "l" + "r" * (len(columns) - 1)
    out = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|",
    ]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def result_path(name: str, out: Path | None = None, quick: bool = False) -> Path:
    """``out`` when given, else benchmarks/results/<name>.md (<name>_quick.md for a quick run, so that a
    quick check never overwrites the full table)."""
    return out or RESULTS / f"{name}{'_quick' if quick else ''}.md"


def write_result(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    tmp.replace(path)
    return path


def record_stdout(
    title: str, measure: Callable[[], int], out: Path, threads: int = 1, written: tuple[int, ...] = (0,)
) -> int:
    """Run ``measure`` (a benchmark that prints its tables) with one thread count and its stdout captured;
    print it under :func:`header` and write it to ``out`` when its exit status is in ``written``."""
    import contextlib
    import io

    threads = set_threads(threads)
    load_start = load_average()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = measure()
    text = header(title, threads, load_start, load_average()) + "\n" + buffer.getvalue()
    print(text)
    if rc in written:
        print("wrote", write_result(out, text), file=sys.stderr)
    return rc
