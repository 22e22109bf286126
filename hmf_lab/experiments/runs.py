"""A results folder of a long run (``hmf-lab reproduce --out DIR``): which run it holds, which cells are done.

A run loses nothing:

- every finished cell is appended to ``cells_partial.jsonl`` at once (one JSON line, with its
  :func:`~hmf_lab.experiments.pipeline.cell_key`); on success the file becomes ``cells.jsonl`` (the raw
  cells behind ``cells.csv``);
- the same command again **resumes**: cells whose key is in ``cells_partial.jsonl`` / ``cells.jsonl``
  (same cell, same task settings, same code) are reused, the others run;
- ``run.json`` names the run (:func:`run_id` of its configuration) from its first second on, so a folder
  holding an earlier, **different** run is never overwritten unless asked (``--overwrite``).

>>> import tempfile
>>> f = RunFolder(tempfile.mkdtemp())
>>> f.state("abc"), f.completed()
('empty', {})
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["RunFolder", "RunConflict", "run_id", "PARTIAL", "CELLS_LOG", "OUTPUTS"]

PARTIAL = "cells_partial.jsonl"   # cells of the run in progress (or interrupted)
CELLS_LOG = "cells.jsonl"         # the raw cells of a finished run (what a rerun reuses)
RUN_INFO = "run.json"
#: the files a grid run writes (what --overwrite removes; figures are the course layer's *.png)
OUTPUTS = ("cells.csv", "summary.csv", "hmf_vs_lmf.csv", "sweep.csv", "results.md", RUN_INFO, PARTIAL, CELLS_LOG)


class RunConflict(ValueError):
    """The results folder holds an earlier, different run (the CLI prints it as one line, exit 2)."""


def run_id(config: dict) -> str:
    """A short hash naming a run by its configuration (what it computes, not how many workers compute it).

    >>> run_id({"tasks": ["lm"], "seeds": 3}) == run_id({"seeds": 3, "tasks": ["lm"]})
    True
    """
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunFolder:
    """The results folder ``out`` of one run."""

    def __init__(self, out):
        self.out = Path(out)
        self.partial = self.out / PARTIAL
        self.cells_log = self.out / CELLS_LOG
        self.info = self.out / RUN_INFO

    def _info(self) -> dict:
        try:
            return json.loads(self.info.read_text())
        except (OSError, ValueError):
            return {}

    def state(self, rid: str) -> str:
        """``"empty"`` (no run here), ``"same"`` (this run, finished or interrupted) or ``"different"``."""
        if not any((self.out / f).exists() for f in OUTPUTS):
            return "empty"
        return "same" if self._info().get("run_id") == rid else "different"

    def describe(self) -> str:
        """A few words on the run this folder holds (for the conflict message)."""
        info = self._info()
        what = info.get("command") or (f"tasks {info['tasks']}" if "tasks" in info else None)
        status = info.get("status", "finished" if (self.out / "cells.csv").exists() else "unknown")
        return f"{what or 'a run without a run id'}, {status}"

    def claim(self, rid: str, overwrite: bool = False, info: dict | None = None) -> str:
        """Make ``out`` this run's folder; returns its state before. A different earlier run raises
        :class:`RunConflict` unless ``overwrite`` (then its files are removed). Writes ``run.json``
        (``status: running``) before any cell runs."""
        self.out.mkdir(parents=True, exist_ok=True)
        st = self.state(rid)
        if st == "different":
            if not overwrite:
                raise RunConflict(f"{self.out} holds an earlier, different run ({self.describe()}); pass --overwrite "
                                  f"to replace it, or choose another --out folder")
            for f in OUTPUTS:
                (self.out / f).unlink(missing_ok=True)
        self.info.write_text(json.dumps(dict(info or {}, run_id=rid, status="running"), indent=1, default=str))
        return st

    @staticmethod
    def _read(path: Path) -> list[dict]:
        """The rows of a JSON-lines file; a torn last line (an interrupted write) is skipped."""
        rows = []
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "cell_key" in row:
                    rows.append(row)
        return rows

    def completed(self) -> dict[str, dict]:
        """``{cell_key: row}`` of every cell this folder holds (a finished run's and an interrupted one's)."""
        return {r["cell_key"]: r for r in self._read(self.cells_log) + self._read(self.partial)}

    def start(self) -> dict[str, dict]:
        """Gather every completed cell into ``cells_partial.jsonl`` (the one log of this run); returns them."""
        done = self.completed()
        self._write(self.partial, done.values())
        self.cells_log.unlink(missing_ok=True)
        return done

    @staticmethod
    def _write(path: Path, rows) -> None:
        """Write JSON lines atomically (a temporary file, then a rename): an interruption keeps the old file."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=float) + "\n")
        os.replace(tmp, path)

    def finish(self, keys, info: dict) -> None:
        """The run finished: its cells (``keys``) go to ``cells.jsonl``, the partial log goes, ``run.json``
        says ``status: finished``."""
        keys = set(keys)
        rows = [r for r in self._read(self.partial) if r["cell_key"] in keys]
        self._write(self.cells_log, {r["cell_key"]: r for r in rows}.values())
        self.partial.unlink(missing_ok=True)
        self.info.write_text(json.dumps(dict(info, status="finished"), indent=1, default=str))
