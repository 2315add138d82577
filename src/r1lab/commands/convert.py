"""`r1lab convert --to fp8|bf16 SRC DST`: rewrite a DeepSeek-V3 checkpoint with block-wise FP8 or BF16 weights."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def convert(
        src: Path = typer.Argument(..., help="checkpoint directory (config.json + *.safetensors)"),
        dst: Path = typer.Argument(..., help="output directory (written atomically; replaced if it exists)"),
        to: str = typer.Option(..., "--to", help="fp8: E4M3 projection weights + weight_scale_inv; bf16: plain BF16"),
        block: int = typer.Option(128, help="FP8 weight block edge (scales per block x block)"),
        pow2_scales: bool = typer.Option(False, "--pow2-scales", help="power-of-two (UE8M0) FP8 scales"),
    ) -> None:
        """Convert between FP8 (DeepSeek-V3 release layout) and BF16 checkpoints; the other files are copied."""
        from r1lab.errors import ConfigError
        from r1lab.fp8.checkpoint import TARGETS, convert_checkpoint

        if to not in TARGETS:
            raise ConfigError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
        if block < 1:
            raise ConfigError(f"--block {block}: must be a positive integer")
        sizes = convert_checkpoint(src, dst, to, block=block, pow2=pow2_scales)
        ratio = sizes["bytes_out"] / max(1, sizes["bytes_in"])
        typer.echo(f"wrote {dst} ({to}): weights {sizes['bytes_in'] / 2**20:.2f} MiB -> "
                   f"{sizes['bytes_out'] / 2**20:.2f} MiB ({ratio:.3f}x)")
