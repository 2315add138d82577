"""A recipe as declared stages with typed artifacts, run in order, skipped when done, resumable.

Each stage owns a directory `<run>/<stage>/`. When a stage finishes, `done.json` is written atomically
into it (what it produced, a summary); a stage with `done.json` is skipped next time. A stage without it
is either resumed (`resume=True`: the stage's trainer continues from its last checkpoint) or started
fresh (its directory is cleared). `from_stage` forgets that stage and every later one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from r1lab.atomic import atomic_write_json
from r1lab.errors import ConfigError, DiskFull, Interrupted, is_disk_full

DONE = "done.json"


@dataclass
class StageContext:
    """What a stage sees: its own directory, the run directory, resume flag and upstream results."""

    run_dir: Path
    stage_dir: Path
    resume: bool
    results: dict[str, dict[str, Any]]  # finished stages' done.json payloads, by stage name

    def artifact(self, stage: str, key: str) -> Any:
        """An upstream stage's artifact (a path is resolved against the run directory)."""
        value = self.results[stage]["artifacts"][key]
        return self.run_dir / value if isinstance(value, str) and not value.startswith("/") else value


@dataclass
class Stage:
    """`run(ctx)` returns {"artifacts": {...}, "summary": {...}}; artifact paths are relative to the run dir."""

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    needs: tuple[str, ...] = ()
    title: str = ""


@dataclass
class Pipeline:
    stages: list[Stage]
    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def _check(self) -> None:
        seen: set[str] = set()
        for s in self.stages:
            missing = [n for n in s.needs if n not in seen]
            if missing:
                raise ConfigError(f"stage '{s.name}' needs {missing} which do not run before it")
            seen.add(s.name)

    def run(self, run_dir: str | Path, *, resume: bool = False, from_stage: str | None = None,
            only: list[str] | None = None) -> dict[str, dict[str, Any]]:
        self._check()
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        names = self.names()
        if from_stage is not None:
            if from_stage not in names:
                raise ConfigError(f"--from {from_stage!r}: unknown stage; stages are {', '.join(names)}")
            for name in names[names.index(from_stage):]:
                shutil.rmtree(run_dir / name, ignore_errors=True)
        results: dict[str, dict[str, Any]] = {}
        for i, stage in enumerate(self.stages, 1):
            stage_dir = run_dir / stage.name
            done = stage_dir / DONE
            if only is not None and stage.name not in only:
                if done.exists():
                    results[stage.name] = json.loads(done.read_text())
                continue
            if done.exists():
                results[stage.name] = json.loads(done.read_text())
                self.log(f"[{i}/{len(self.stages)}] {stage.name}: done, skipped")
                continue
            if stage_dir.exists() and not resume:
                shutil.rmtree(stage_dir)
            stage_dir.mkdir(parents=True, exist_ok=True)
            self.log(f"[{i}/{len(self.stages)}] {stage.name}: {stage.title or 'running'}")
            t0 = time.perf_counter()
            with stage_errors(stage.name):
                out = stage.run(StageContext(run_dir, stage_dir, resume, results))
            seconds = time.perf_counter() - t0
            payload = {"stage": stage.name, "artifacts": out.get("artifacts", {}),
                       "summary": out.get("summary", {}), "seconds": round(seconds, 2)}
            atomic_write_json(done, payload)
            results[stage.name] = payload
            self.timings[stage.name] = seconds
            self.log(f"[{i}/{len(self.stages)}] {stage.name}: finished in {seconds:.1f}s")
        return results


@contextlib.contextmanager
def stage_errors(stage: str) -> Iterator[None]:
    """A full disk and Ctrl-C inside a stage become one line saying what is safe and how to go on: every
    writer is temp + rename, so the stage's last complete checkpoint is intact and it is not marked done."""
    resume = "`r1lab run --resume` continues"
    try:
        yield
    except DiskFull as e:
        raise DiskFull(f"{e}; the last complete checkpoint of {stage} is intact (free space, then {resume})") from None
    except Interrupted as e:
        raise Interrupted(f"interrupted during {stage} {e}; {resume}") from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during {stage}; {resume}") from None
    except Exception as e:
        if not is_disk_full(e):
            raise
        where = getattr(e, "filename", None) or f"the {stage} stage's files"
        raise DiskFull(f"no space left on device while writing {where}; the last complete checkpoint of {stage} "
                       f"is intact (free space, then {resume})") from None
