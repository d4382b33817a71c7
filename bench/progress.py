"""Progress a person can see: what a long run is doing and how far it has got.

Long work (pre-training a zoo base, post-training a case, an evaluation) opens a *phase* and
advances it; the `Progress` the run environment carries decides what a person sees:

* `Quiet` (the default of every library call): nothing;
* `Live`, for a terminal: one line rewritten in place (name, done/total, rate, ETA), left as
  one summary line when the phase ends;
* `Log`, for a log file or CI: one line per phase when it ends (what, how much, how long),
  never a bar per step.

Both write through a function they are given, so the pytest plugin hands them its terminal
writer with capture suspended (`bench.harness.plugin`), and the dots of a run are not the only
sign of life during a cold zoo build. Rendering is rate-limited: a phase advanced every step
costs a clock read, not a write.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable

Write = Callable[[str], None]


def _amount(value: float, unit: str) -> str:
    """``131.1k``, ``1.2M``, ``64``, ``19.7``: three significant digits at most."""
    if unit == "tokens" or value >= 10_000:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= scale:
                return f"{value / scale:.1f}{suffix}"
    return f"{value:.3g}" if value != int(value) else f"{int(value)}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Phase:
    """One piece of long work: `advance` it as it goes, `close` it (or leave its `with` block)."""

    def __init__(self, progress: "Progress", name: str, total: float | None, unit: str):
        self.progress, self.name, self.total, self.unit = progress, name, total, unit
        self.done = 0.0
        self.status = ""
        self.start = time.perf_counter()
        self._shown = 0.0
        self.closed = False

    def advance(self, amount: float = 1, status: str = "") -> None:
        self.done += amount
        self.status = status or self.status
        now = time.perf_counter()
        if now - self._shown >= self.progress.interval:
            self._shown = now
            self.progress.show(self)

    def to(self, done: float, status: str = "") -> None:
        """Set the amount done (for work reported as a running total)."""
        self.advance(done - self.done, status)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def line(self, final: bool = False) -> str:
        """``name: 54.1k/131.1k tokens (41%), 1.2k tokens/s, ETA 1 min 04 s``."""
        unit = f" {self.unit}" if self.unit else ""
        amount = _amount(self.done, self.unit)
        if self.total:
            amount += f"/{_amount(self.total, self.unit)}"
        # A phase that counts nothing (a pruning pass) shows only its name and time.
        parts = [f"{self.name}: {amount}{unit}" if self.total or self.done else (self.name if final else
                                                                                 f"{self.name} ...")]
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        if final:
            parts.append(f"in {_duration(self.elapsed)}")
        elif self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        if rate > 0 and self.unit:
            parts.append(f"{_amount(rate, self.unit)} {self.unit}/s")
        if not final and self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        if self.status:
            parts.append(self.status)
        return ", ".join(parts)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.progress.end(self)

    def __enter__(self) -> "Phase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Progress:
    """Where phases are shown. The base class shows nothing (`Quiet`)."""

    interval = 0.5  # seconds between two renderings of one phase

    def phase(self, name: str, total: float | None = None, unit: str = "") -> Phase:
        """Open a phase; `total` (in `unit`) makes a percentage and an ETA possible."""
        phase = Phase(self, name, total, unit)
        self.begin(phase)
        return phase

    def begin(self, phase: Phase) -> None:
        """A phase opened."""

    def show(self, phase: Phase) -> None:
        """A phase advanced (at most every `interval` seconds)."""

    def end(self, phase: Phase) -> None:
        """A phase closed."""

    def note(self, text: str) -> None:
        """A one-off line (a stale record rerun, a rebuilt cache entry)."""


class Quiet(Progress):
    """Nothing is shown: the default for library calls and tests."""


QUIET = Quiet()


class Log(Progress):
    """One line per phase, when it ends: for log files and CI."""

    def __init__(self, write: Write):
        self.write = write

    def end(self, phase: Phase) -> None:
        self.write(f"[prunebench] {phase.line(final=True)}\n")

    def note(self, text: str) -> None:
        self.write(f"[prunebench] {text}\n")


class Live(Progress):
    """A terminal line rewritten in place while phases run (several at once side by side, as
    when zoo bases build in parallel), and one summary line for each phase when it ends."""

    def __init__(self, write: Write, width: int = 120):
        self.write, self.width = write, width
        self.open: list[Phase] = []
        self._drawn = False
        self._lock = threading.Lock()

    def _line(self, text: str) -> str:
        return text[: self.width - 1].ljust(self.width - 1)

    def _draw(self) -> None:
        if self.open:
            text = " | ".join(p.line() for p in self.open)
            # The first line of a run starts below whatever the terminal holds (a test file name).
            self.write(("\r" if self._drawn else "\n") + self._line(text) + "\r")
            self._drawn = True

    def begin(self, phase: Phase) -> None:
        with self._lock:
            self.open.append(phase)
            self._draw()

    def show(self, phase: Phase) -> None:
        with self._lock:
            self._draw()

    def end(self, phase: Phase) -> None:
        with self._lock:
            if phase in self.open:
                self.open.remove(phase)
            self.write(("\r" if self._drawn else "\n") + self._line(phase.line(final=True)) + "\n")
            self._drawn = bool(self.open)
            if self.open:
                self.write(self._line(" | ".join(p.line() for p in self.open)) + "\r")

    def note(self, text: str) -> None:
        with self._lock:
            self.write(("\r" if self._drawn else "\n") + self._line(text) + "\n")
            self._drawn = bool(self.open)
            if self.open:
                self.write(self._line(" | ".join(p.line() for p in self.open)) + "\r")


class Relay(Progress):
    """A child process's progress, sent to its parent through a multiprocessing queue
    (`relayed`): a zoo base pre-training in a worker, a distributed post-training's rank 0."""

    interval = 1.0

    def __init__(self, queue):
        self.queue = queue

    def _send(self, kind: str, phase: Phase) -> None:
        self.queue.put((kind, id(phase), phase.name, phase.total, phase.unit, phase.done, phase.status))

    def begin(self, phase: Phase) -> None:
        self._send("begin", phase)

    def show(self, phase: Phase) -> None:
        self._send("show", phase)

    def end(self, phase: Phase) -> None:
        self._send("end", phase)

    def note(self, text: str) -> None:
        self.queue.put(("note", 0, text, None, "", 0, ""))


@contextlib.contextmanager
def relayed(progress: Progress, context):
    """A `Progress` to hand to child processes of `context` (a multiprocessing context), whose
    phases a thread of this process replays into `progress` until the block ends. When
    `progress` shows nothing, the children get `QUIET` and no queue is made."""
    if isinstance(progress, Quiet):
        yield QUIET
        return
    queue = context.Queue()
    phases: dict = {}

    def drain() -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            kind, key, name, total, unit, done, status = item
            if kind == "note":
                progress.note(name)
            elif kind == "begin":
                phases[key] = progress.phase(name, total, unit)
            elif key in phases:
                phases[key].to(done, status)
                if kind == "end":
                    phases.pop(key).close()

    thread = threading.Thread(target=drain, name="prunebench-progress", daemon=True)
    thread.start()
    try:
        yield Relay(queue)
    finally:
        queue.put(None)
        thread.join(timeout=5)
        for phase in phases.values():  # a child that died mid-phase
            phase.close()
