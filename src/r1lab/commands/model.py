"""`r1lab model-info PRESET_OR_DIR [--json]`: parameters, FLOPs and KV-cache bytes per token of a model shape."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _load_config(preset_or_dir: str):
    from r1lab.errors import ConfigError
    from r1lab.model.config import PRESETS, ModelConfig
    from r1lab.model.hf import checkpoint_config

    path = Path(preset_or_dir)
    if preset_or_dir in PRESETS:
        return ModelConfig.from_preset(preset_or_dir), f"preset {preset_or_dir}"
    if path.is_dir():
        return checkpoint_config(path), str(path)
    raise ConfigError(f"{preset_or_dir!r}: neither a model preset ({', '.join(PRESETS)}) nor a checkpoint directory")


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def register(app: typer.Typer) -> None:
    @app.command("model-info")
    def model_info(
        preset_or_dir: str = typer.Argument(..., help="tiny | small | deepseek-v3 | a checkpoint directory"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
        context: int = typer.Option(0, help="context length for attention FLOPs (default min(max_seq_len, 4096))"),
        kv_bytes: int = typer.Option(2, help="bytes per cached element (2 = bf16)"),
    ) -> None:
        """Total/active parameters, FLOPs per token and MLA vs MHA KV-cache bytes per token (computed, not allocated)."""
        from r1lab.model.accounting import model_stats

        config, source = _load_config(preset_or_dir)
        stats = model_stats(config, context=context or None, dtype_bytes=kv_bytes)
        if as_json:
            typer.echo(json.dumps({"source": source, **stats, "config": config.to_dict()}))
            return
        s = stats
        lines = [
            f"model            {source}",
            f"total_params     {s['total_params']:,} ({_human(s['total_params'])})",
            f"active_params    {s['active_params']:,} ({_human(s['active_params'])}) per token",
            f"mtp_params       {s['mtp_params']:,} ({_human(s['mtp_params'])}) in {config.mtp_depth} MTP module(s), "
            "shared embedding/head excluded",
            f"flops/token      {s['forward_flops_per_token'] / 1e9:.4g} GFLOP forward, "
            f"{s['train_flops_per_token'] / 1e9:.4g} GFLOP train (context {s['context']})",
            f"kv bytes/token   MLA {s['kv_bytes_per_token_mla']:,}  |  MHA {s['kv_bytes_per_token_mha']:,}  "
            f"(MLA/MHA = {s['kv_mla_over_mha']:.2%}; naive MLA K+V {s['kv_bytes_per_token_naive_mla']:,}; "
            f"{s['kv_dtype_bytes']} bytes/element)",
        ]
        typer.echo("\n".join(lines))
