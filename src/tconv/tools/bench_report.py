"""``tconv bench``'s table: a :class:`Row` per case, its line, the summary lines (geometric means, the worst
rows, the rows over 1.25 x the fastest peer) and the bar chart of the ratios."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Row", "format_row", "plot_ratios", "summarize"]


@dataclass
class Row:
    case: str
    kind: str
    times: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    gflops: float = 0.0
    gemm_gflops: float = 0.0  # the GEMM rate measured alongside this row (median of one sample per round)
    gemm_percent: float = 0.0
    peak_mib: float = 0.0
    bound_mib: float = 0.0

    @property
    def vs_torch(self) -> float | None:
        mine, theirs = self.times.get("tconv"), self.times.get("torch")
        return mine / theirs if mine and theirs else None

    @property
    def fastest_peer(self) -> tuple[str, float] | None:
        peers = [(name, t) for name, t in self.times.items() if name != "tconv" and t]
        return min(peers, key=lambda p: p[1]) if peers else None


def _ms(value: float | None) -> str:
    return f"{value * 1e3:9.2f}" if value else "        -"


def format_row(row: Row, frameworks: list[str]) -> str:
    peer = row.fastest_peer
    mine = row.times.get("tconv")
    vs_peer = f"{mine / peer[1]:5.2f} {peer[0]:<11}" if peer and mine else " " * 17
    vs_torch = f"{row.vs_torch:5.2f}" if row.vs_torch else "    -"
    times = " ".join(_ms(row.times.get(name)) for name in frameworks)
    return (
        f"{_label(row):<22} {times} {vs_torch} {vs_peer} "
        f"{row.gflops:7.1f} {row.gemm_gflops:6.1f} {row.gemm_percent:5.1f}% {row.peak_mib:8.1f}/{row.bound_mib:.0f}"
    )


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def _vs_peer(row: Row) -> float | None:
    peer, mine = row.fastest_peer, row.times.get("tconv")
    return mine / peer[1] if peer and mine else None


def _label(row: Row) -> str:
    return row.case + (" (grad)" if row.kind == "grad" else "")


def summarize(rows: list[Row], label: str) -> list[str]:
    """The summary lines: geometric means against PyTorch and the fastest peer, the worst rows, rows over 1.25."""
    vs_torch = [r.vs_torch for r in rows if r.vs_torch]
    vs_peer = [v for r in rows if (v := _vs_peer(r))]
    means = [
        f"tconv/{against}: {_geomean(ratios):.2f} over {len(ratios)} rows"
        for against, ratios in (("torch", vs_torch), ("fastest peer", vs_peer))
        if ratios  # a run without PyTorch (or without any peer) has no such mean, rather than nan
    ]
    lines = [f"{label}: geometric mean {'; '.join(means)}" if means else f"{label}: no ratio (no peer timed a row)"]
    worst_torch = max((r for r in rows if r.vs_torch), key=lambda r: r.vs_torch or 0.0, default=None)
    worst_peer = max((r for r in rows if _vs_peer(r)), key=lambda r: _vs_peer(r) or 0.0, default=None)
    if worst_torch is not None:
        lines.append(f"worst row vs torch: {_label(worst_torch)} at {worst_torch.vs_torch:.2f}")
    if worst_peer is not None and worst_peer.fastest_peer:
        lines.append(
            f"worst row vs fastest peer: {_label(worst_peer)} at {_vs_peer(worst_peer):.2f} "
            f"({worst_peer.fastest_peer[0]})"
        )
    over = [f"{_label(r)} {v:.2f}" for r in rows if (v := _vs_peer(r)) and v > 1.25]
    lines.append(f"rows above 1.25 x the fastest peer: {len(over)}{': ' + ', '.join(over) if over else ''}")
    return lines


def plot_ratios(rows: list[dict[str, Any]], path: str) -> None:
    """Bar chart of tconv/PyTorch and tconv/fastest peer per row (rows as in the ``--json`` table)."""
    from .._plotting import pyplot

    def ratio(row: dict[str, Any], peers: list[str]) -> float:
        mine = row["times"].get("tconv")
        theirs = [row["times"][p] for p in peers if row["times"].get(p)]
        return mine / min(theirs) if mine and theirs else 0.0

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    labels = [r["case"] + (" grad" if r["kind"] == "grad" else "") for r in rows]
    positions = range(len(rows))
    others = sorted({name for r in rows for name in r["times"] if name != "tconv"})
    ax.bar([p - 0.2 for p in positions], [ratio(r, ["torch"]) for r in rows], width=0.4, label="tconv / PyTorch")
    ax.bar([p + 0.2 for p in positions], [ratio(r, others) for r in rows], width=0.4, label="tconv / fastest peer")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(list(positions), labels, rotation=70, fontsize=7)
    ax.set_ylabel("time ratio (below 1: tconv faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
