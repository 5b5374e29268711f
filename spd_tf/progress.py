"""Progress and info output, the same in every tool (train, evaluate, convert, export, predict).

On a terminal a redrawing tqdm bar; in a log file or pipe (not a TTY) a redraw per step
would be one giant line of escape codes, so there a plain line is written at most every 10 %
of the total or every 60 s, with count/total, rate and ETA. `--no-progress` turns progress
off; `--quiet` also drops info lines (warning and error lines still print). The two
flags are added to every tool's parser by `spd_tf.cli_args.Parser`, which calls `configure`.
"""

import dataclasses
import sys
import time
from typing import Iterable, Optional, TextIO

from tqdm import tqdm

LINE_FRACTION = 0.1  # non-TTY: a line per 10 % of the total ...
LINE_SECONDS = 60.0  # ... or per minute, whichever comes first


@dataclasses.dataclass
class Mode:
    progress: bool = True
    quiet: bool = False


MODE = Mode()


def configure(progress: bool = True, quiet: bool = False) -> None:
    """Sets the process's output mode (`--quiet` implies no progress)."""
    MODE.progress = progress and not quiet
    MODE.quiet = quiet


def info(message: str, file: Optional[TextIO] = None) -> None:
    """An info line (on stdout by default, where the run's log is), unless --quiet;
    `warning:`/`error:` lines print even then."""
    if not MODE.quiet or message.lstrip().startswith(("warning", "error")):
        print(message, file=file or sys.stdout, flush=True)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LineProgress:
    """The non-TTY bar: a bounded number of plain lines, the last one at close."""

    def __init__(self, total: Optional[int], desc: str, unit: str, initial: int, stream: TextIO, clock=time.monotonic):
        self.total, self.desc, self.unit, self.stream, self.clock = total, desc, unit, stream, clock
        self.n = self.initial = self._shown = initial
        self.postfix = ""
        self._started = self._shown_at = clock()

    def update(self, count: int = 1) -> None:
        self.n += count
        now = self.clock()
        step = max(1, int(self.total * LINE_FRACTION)) if self.total else None
        if (step and self.n - self._shown >= step) or now - self._shown_at >= LINE_SECONDS:
            self._write(now)

    def set_total(self, total: int) -> None:
        self.total = total

    def set_postfix(self, values: dict) -> None:
        self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.n != self._shown:
            self._write(self.clock())

    def _write(self, now: float) -> None:
        elapsed = now - self._started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else ""),
                 f"{rate:.3g} {self.unit}/s", f"elapsed {_duration(elapsed)}"]
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        print(" | ".join(parts), file=self.stream, flush=True)
        self._shown, self._shown_at = self.n, now


class BarProgress:
    """The TTY bar: tqdm, with the same small interface as LineProgress."""

    def __init__(self, total: Optional[int], desc: str, unit: str, initial: int, stream: TextIO, leave: bool):
        self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream, leave=leave,
                        dynamic_ncols=True)

    def update(self, count: int = 1) -> None:
        self.bar.update(count)

    def set_total(self, total: int) -> None:
        if total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()

    def set_postfix(self, values: dict) -> None:
        self.bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        self.bar.close()


class NoProgress:
    def update(self, count: int = 1) -> None:
        pass

    def set_total(self, total: int) -> None:
        pass

    def set_postfix(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """`with Progress(total, "evaluating", "img") as bar: ... bar.update(n)`; the kind of
    output follows the mode and whether `stream` (stderr by default) is a terminal."""

    def __init__(self, total: Optional[int], desc: str, unit: str = "it", initial: int = 0,
                 stream: Optional[TextIO] = None, enabled: bool = True, leave: bool = True):
        stream = stream or sys.stderr
        if not (enabled and MODE.progress):
            self._impl = NoProgress()
        elif getattr(stream, "isatty", lambda: False)():
            self._impl = BarProgress(total, desc, unit, initial, stream, leave)
        else:
            self._impl = LineProgress(total, desc, unit, initial, stream)
        self.update, self.set_total, self.set_postfix = self._impl.update, self._impl.set_total, self._impl.set_postfix

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable, desc: str, unit: str = "it", total: Optional[int] = None, **kwargs):
    """Iterates `items`, showing progress (total from len(items) when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(total, desc, unit, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()
