"""The end-of-run funnel: a table on the terminal and a PNG where each stage's drops are visible."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from curate.stats import StageCounter


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def funnel_table(counters: list[StageCounter]) -> Table:
    """One row per stage: in, kept, dropped, top drop reasons, bytes and time."""
    table = Table(title="Stage funnel", title_justify="left")
    for header, justify in [
        ("stage", "left"),
        ("in", "right"),
        ("kept", "right"),
        ("dropped", "right"),
        ("kept %", "right"),
        ("top drop reasons", "left"),
        ("MB in→out", "right"),
        ("s", "right"),
    ]:
        table.add_column(header, justify=justify)
    for c in counters:
        dropped = sum(c.dropped.values())
        reasons = ", ".join(f"{r} {n}" for r, n in c.dropped.most_common(3))
        if len(c.dropped) > 3:
            reasons += f", +{len(c.dropped) - 3} more"
        share = f"{100 * c.kept / c.docs_in:.1f}" if c.docs_in else "-"
        table.add_row(
            c.id,
            f"{c.docs_in:,}",
            f"{c.kept:,}",
            f"{dropped:,}",
            share,
            reasons,
            f"{_mb(c.bytes_in)}→{_mb(c.bytes_out)}",
            f"{c.seconds:.2f}",
        )
    return table


def write_funnel_png(counters: list[StageCounter], path: Path) -> Path:
    """Horizontal bars: documents kept after each stage, dropped ones stacked by reason."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reasons = sorted({r for c in counters for r in c.dropped})
    colors = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(counters) + 1.8))
    labels = [c.id for c in counters][::-1]
    rows = counters[::-1]
    ax.barh(labels, [c.kept for c in rows], color="#1d3557", label="kept")
    left = [c.kept for c in rows]
    for i, reason in enumerate(reasons):
        widths = [c.dropped.get(reason, 0) for c in rows]
        ax.barh(labels, widths, left=left, color=colors(i % 20), label=reason)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("documents")
    ax.set_title("Documents per stage: kept, and dropped by reason")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
