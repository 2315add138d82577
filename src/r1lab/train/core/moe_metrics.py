"""MoE routing health as training metrics, shared by every stage that trains an r1lab MoE model."""

from __future__ import annotations

from typing import Any


def moe_metrics(stats: list[dict]) -> dict[str, Any]:
    """Expert load shares per layer, MaxVio (mean and worst layer) and dead experts from routing stats."""
    if not stats:
        return {}
    out: dict[str, Any] = {}
    for s in stats:
        total = sum(s["load"]) or 1.0
        out[f"moe/load/L{s['layer']}"] = [c / total for c in s["load"]]
        out[f"moe/max_vio/L{s['layer']}"] = s["max_vio"]
    vios = [s["max_vio"] for s in stats]
    out["moe/max_vio"] = sum(vios) / len(vios)
    out["moe/max_vio_max"] = max(vios)
    out["moe/dead_experts"] = float(sum(s["dead_experts"] for s in stats))
    return out
