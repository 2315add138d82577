"""Run the check's parts, each isolated in its own process under its own time limit, and report every figure.

A part passes when its process exits 0 within its limit; its `RESULT <name> <value>` lines become figures. Parts
that need CUDA are skipped, with the reason, on a machine without it. The report (`gpu_check.json` and
`gpu_check.md`, written atomically) lists every part with its status, time and figures; the exit status is
non-zero when any part failed, and the last line names them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from r1lab.atomic import atomic_write_json, atomic_write_text

RESULT_LINE = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s*$", re.M)


@dataclass(frozen=True)
class Part:
    """One check: a command (argv, run from the repository root), its time limit and whether it needs CUDA.
    `{out}` in an argument is replaced by the part's own output directory."""

    name: str
    command: tuple[str, ...]
    timeout_s: float
    needs_cuda: bool = True
    default: bool = True
    doc: str = ""
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class PartResult:
    name: str
    status: str  # passed | failed | timeout | skipped
    seconds: float
    results: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    output_tail: str = ""


def parse_results(text: str) -> dict[str, float]:
    """The `RESULT <name> <number>` lines of a part's output (the last value of a name wins)."""
    out: dict[str, float] = {}
    for name, value in RESULT_LINE.findall(text):
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def select_parts(parts: Sequence[Part], names: str | None) -> list[Part]:
    """The default parts, or the comma-separated `names` (any part, default or not) in declaration order."""
    if not names:
        return [p for p in parts if p.default]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {p.name for p in parts}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"gpu-check: unknown part(s) {', '.join(unknown)}; parts are {', '.join(sorted(known))}")
    return [p for p in parts if p.name in wanted]


def run_part(part: Part, *, cuda: bool, out_dir: Path, cwd: Path, log=print) -> PartResult:
    if part.needs_cuda and not cuda:
        return PartResult(part.name, "skipped", 0.0, reason="no CUDA device on this machine")
    part_dir = out_dir / part.name
    part_dir.mkdir(parents=True, exist_ok=True)
    argv = [a.replace("{out}", str(part_dir)).replace("{python}", sys.executable) for a in part.command]
    env = {**os.environ, **dict(part.env)}
    log(f"[gpu-check] {part.name}: {' '.join(argv)} (limit {part.timeout_s:.0f} s)")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=part.timeout_s)
    except subprocess.TimeoutExpired as e:
        seconds = time.perf_counter() - t0
        text = _text(e.stdout) + _text(e.stderr)
        return PartResult(part.name, "timeout", seconds, parse_results(text),
                          f"exceeded its {part.timeout_s:.0f} s limit", text[-4000:])
    except OSError as e:
        return PartResult(part.name, "failed", time.perf_counter() - t0, reason=f"cannot start: {e}")
    seconds = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    (part_dir / "output.log").write_text(text, encoding="utf-8")
    status = "passed" if proc.returncode == 0 else "failed"
    reason = "" if status == "passed" else f"exit status {proc.returncode}"
    return PartResult(part.name, status, seconds, parse_results(proc.stdout), reason, text[-4000:])


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def write_report(out_dir: Path, results: list[PartResult], header: dict) -> tuple[Path, Path]:
    """gpu_check.json (everything) and gpu_check.md (a table a person reads), each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {k: v for r in results for k, v in r.results.items()}
    json_path = out_dir / "gpu_check.json"
    atomic_write_json(json_path, {**header, "parts": [asdict(r) for r in results], "results": figures})
    lines = ["# r1lab GPU check", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    lines += ["", "| part | status | seconds | figures | reason |", "|---|---|---|---|---|"]
    for r in results:
        figs = ", ".join(f"{k} {v:g}" for k, v in r.results.items())
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.1f} | {figs} | {r.reason} |")
    md_path = out_dir / "gpu_check.md"
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path


def run_check(parts: Sequence[Part], *, cuda: bool, out_dir: Path, cwd: Path, header: dict, log=print) -> int:
    """Run `parts` in order (each whatever happened before), write the report, print RESULT lines; 0 iff none failed."""
    t0 = time.perf_counter()
    results = []
    for part in parts:
        r = run_part(part, cuda=cuda, out_dir=out_dir, cwd=cwd, log=log)
        log(f"[gpu-check] {part.name}: {r.status} in {r.seconds:.1f} s" + (f" ({r.reason})" if r.reason else ""))
        if r.status in ("failed", "timeout") and r.output_tail:
            log(r.output_tail[-1500:])
        results.append(r)
    minutes = (time.perf_counter() - t0) / 60
    header = {**header, "minutes": round(minutes, 2)}
    json_path, md_path = write_report(out_dir, results, header)
    log(f"[gpu-check] report: {md_path} and {json_path}")
    for r in results:
        for name, value in r.results.items():
            log(f"RESULT {name} {value:g}")
    log(f"RESULT gpu_check_minutes {minutes:.2f}")
    bad = [r.name for r in results if r.status in ("failed", "timeout")]
    if bad:
        log(f"gpu-check: failed: {', '.join(bad)}")
        return 1
    skipped = [r.name for r in results if r.status == "skipped"]
    log("gpu-check: every part passed" + (f" ({len(skipped)} skipped: no CUDA)" if skipped else ""))
    return 0


def environment() -> dict:
    """What the report's header says about the machine (torch, CUDA, GPU)."""
    import torch  # CLI start-up time

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "cuda": torch.version.cuda or "none",
            "gpu": torch.cuda.get_device_name(0) if cuda else "none", "python": sys.version.split()[0]}
