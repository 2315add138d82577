"""The offline install of `make gpu-check`: the carried wheels, then r1lab itself, into the Python that runs this
(the GPU machine's own, keeping its CUDA torch). Standard library only, so it runs before r1lab is installed.

`python -m r1lab.gpu_check.install [--wheels .whl] [--no-project] [--dry-run]` (with `PYTHONPATH=src`):
- every `*.whl` in the folder is installed with `pip install --no-index --no-deps` (nothing is downloaded, nothing
  the machine has, torch above all, is replaced);
- then the checkout with `pip install --no-index --no-deps --no-build-isolation -e .`.
A missing or empty folder is fine when r1lab and its dependencies already import (a development machine); else it
is a one-line error naming the folder and `make gpu-wheels`.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NEEDED = ("torch", "transformers", "pydantic", "safetensors", "yaml", "typer", "math_verify")


def missing_modules(names=NEEDED) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def project_installed() -> bool:
    """r1lab already imports from this checkout (an editable install, as `make setup` makes)."""
    spec = importlib.util.find_spec("r1lab")
    return spec is not None and spec.origin is not None and Path(spec.origin).resolve().is_relative_to(ROOT)


def commands(wheels: list[Path], *, project: bool, python: str = sys.executable) -> list[list[str]]:
    pip = [python, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    out = []
    if wheels:
        out.append([*pip, *map(str, wheels)])
    if project:
        out.append([*pip, "--no-build-isolation", "-e", str(ROOT)])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu-check-install", description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", default=str(ROOT / ".whl"), help="folder of wheels made by `make gpu-wheels`")
    ap.add_argument("--no-project", action="store_true", help="install the wheels only, not the checkout")
    ap.add_argument("--dry-run", action="store_true", help="print the pip commands instead of running them")
    args = ap.parse_args(argv)
    folder = Path(args.wheels)
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        missing = missing_modules()
        if missing:
            print(f"error: no wheels in {folder} and this Python lacks {', '.join(missing)}; run `make gpu-wheels` "
                  f"where the package registries are reachable and carry {folder.name}/ beside the checkout",
                  file=sys.stderr)
            return 2
        print(f"gpu-check install: no wheels in {folder}; this Python already has what the check imports")
    project = not args.no_project and not (not wheels and project_installed())
    for cmd in commands(wheels, project=project):
        print("gpu-check install:", " ".join(cmd[:8]) + (" ..." if len(cmd) > 8 else ""))
        if not args.dry_run:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip() or proc.stdout.strip() or "pip failed").splitlines()[-1]
                print(f"error: offline install failed: {last}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
