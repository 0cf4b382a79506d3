"""Plots the chapters share. Each returns a matplotlib Figure and never calls ``show``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def dataset_overview(ratings: pd.DataFrame) -> Figure:
    """Three panels: rating distribution, item popularity long tail, ratings per user."""
    fig, (ax_r, ax_tail, ax_user) = _figure(3, width=4.6)
    counts = ratings["rating"].value_counts().sort_index()
    ax_r.bar(counts.index.astype(int), counts.to_numpy(), color="tab:blue")
    ax_r.set(title="Rating distribution", xlabel="rating", ylabel="ratings")

    popularity = np.sort(ratings.groupby("item_id").size().to_numpy())[::-1]
    share = np.cumsum(popularity) / popularity.sum()
    ax_tail.plot(np.arange(1, len(popularity) + 1), popularity, color="tab:orange")
    ax_tail.set(
        title="Long tail of item popularity", xlabel="item rank", ylabel="ratings", yscale="log"
    )
    head = int(np.searchsorted(share, 0.5)) + 1
    ax_tail.axvline(head, ls="--", c="grey")
    ax_tail.text(head * 1.1, popularity[0] / 2, f"{head} items hold\nhalf the ratings")

    per_user = ratings.groupby("user_id").size()
    ax_user.hist(per_user, bins=40, color="tab:green")
    ax_user.set(title="Activity per user", xlabel="ratings per user", ylabel="users", yscale="log")
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, metrics: list[str], title: str = "") -> Figure:
    """Grouped bars: one group per metric, one bar per model (row of ``table``)."""
    fig, (ax,) = _figure(1, width=7.0)
    width = 0.8 / max(len(table), 1)
    x = np.arange(len(metrics))
    for i, (name, row) in enumerate(table[metrics].iterrows()):
        ax.bar(x + i * width, row.to_numpy(dtype=float), width, label=str(name))
    ax.set_xticks(x + width * (len(table) - 1) / 2, metrics)
    ax.set(title=title, ylabel="value")
    ax.legend()
    fig.tight_layout()
    return fig


def line_plot(
    x: ArrayLike,
    series: dict[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
) -> Figure:
    """Several named curves over the same x values."""
    fig, (ax,) = _figure(1, width=6.0)
    for name, values in series.items():
        ax.plot(x, values, marker="o", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if logx else "linear")
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


def tradeoff_scatter(
    sweep: pd.DataFrame, base: pd.Series, chosen: pd.Series, max_ctr_drop: float
) -> Figure:
    """CTR against revenue per impression for every point of a trade-off sweep (chapter 8).

    ``sweep``: one row per operating point with ``ctr``, ``revenue_per_impression``,
    ``diversity`` and ``pareto`` (bool); ``base``: the CTR-optimal row; ``chosen``: the chosen
    row, with its interval bounds (``ctr_low``/``ctr_high``,
    ``revenue_per_impression_low``/``_high``) and the simulator's truth (``oracle_ctr``,
    ``oracle_revenue_per_impression``). Points are coloured by diversity, Pareto points big;
    the dotted line is the CTR budget ``(1 - max_ctr_drop) * base.ctr``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sc = ax.scatter(sweep.ctr, sweep.revenue_per_impression, c=sweep.diversity, cmap="viridis",
                    s=np.where(sweep.pareto, 60, 15), alpha=0.8)  # fmt: skip
    revenue = chosen.revenue_per_impression
    ax.errorbar([chosen.ctr], [revenue], fmt="none", ecolor="orange",
                xerr=[[chosen.ctr - chosen.ctr_low], [chosen.ctr_high - chosen.ctr]],
                yerr=[[revenue - chosen.revenue_per_impression_low],
                      [chosen.revenue_per_impression_high - revenue]])  # fmt: skip
    ax.scatter([base.ctr], [base.revenue_per_impression], marker="s", c="red", s=90,
               label="CTR-optimal")  # fmt: skip
    ax.scatter([chosen.ctr], [revenue], marker="*", c="orange", s=300, edgecolor="k",
               label="chosen (estimate, 95% CI)")  # fmt: skip
    ax.scatter([chosen.oracle_ctr], [chosen.oracle_revenue_per_impression], marker="*", s=300,
               facecolor="none", edgecolor="k", label="chosen: truth we could not know")  # fmt: skip
    budget = f"{max_ctr_drop:.0%} CTR budget (estimated)"
    ax.axvline((1 - max_ctr_drop) * base.ctr, ls=":", c="grey", label=budget)
    ax.set(xlabel="CTR (estimated on held-out logs)", ylabel="revenue per impression (estimated)",
           title="CTR vs revenue; colour = intra-list diversity, big = Pareto")  # fmt: skip
    fig.colorbar(sc, ax=ax, label="diversity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
