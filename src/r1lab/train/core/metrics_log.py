"""Per-step metrics: `metrics.jsonl` (one JSON object per line), TensorBoard, and W&B when asked for.

On resume, lines after the checkpoint's step are dropped first, so the file of a resumed run matches an
uninterrupted one; TensorBoard is told to purge the same steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from r1lab.atomic import atomic_write_text, raise_if_disk_full

METRICS = "metrics.jsonl"


def _jsonable(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep only records with step <= last_step (atomic rewrite)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


class MetricsLogger:
    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, wandb: bool = False,
                 wandb_project: str = "r1lab", run_config: dict | None = None, resume_step: int | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS
        if resume_step is not None:
            truncate_metrics(self.path, resume_step)
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # only when a run logs to it

            self._tb = SummaryWriter(str(self.out_dir / "tb"),
                                     purge_step=resume_step + 1 if resume_step is not None else None)
        self._wandb = None
        if wandb:
            try:
                import wandb as wandb_mod  # optional extra
            except ImportError:
                wandb_mod = None
            if wandb_mod is not None:
                self._wandb = wandb_mod.init(project=wandb_project, config=run_config or {},
                                             dir=str(self.out_dir), resume="allow")

    def log(self, step: int, metrics: dict[str, float | list[float]]) -> None:
        """Scalars go everywhere; list values (e.g. per-expert load `moe/load/L1`) only to metrics.jsonl."""
        record = {"step": step, **{k: [_jsonable(float(x)) for x in v] if isinstance(v, list)
                                   else _jsonable(float(v)) for k, v in metrics.items()}}
        try:
            self._file.write(json.dumps(record) + "\n")  # one write per line: a kill leaves whole lines
            self._file.flush()
        except OSError as e:
            raise_if_disk_full(e, self.path)
            raise
        scalars = {k: float(v) for k, v in metrics.items() if not isinstance(v, list)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
