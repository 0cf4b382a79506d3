"""Shared plots draw what their docstrings promise."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_tradeoff_scatter_marks_budget_base_chosen_and_truth():
    from recsys_lib.course.plots import tradeoff_scatter

    sweep = pd.DataFrame({
        "ctr": [0.10, 0.098, 0.09], "revenue_per_impression": [1.0, 1.2, 1.3],
        "diversity": [0.2, 0.3, 0.4], "pareto": [True, True, False],
    })  # fmt: skip
    chosen = sweep.iloc[1].copy()
    chosen["ctr_low"], chosen["ctr_high"] = 0.097, 0.099
    chosen["revenue_per_impression_low"], chosen["revenue_per_impression_high"] = 1.1, 1.3
    chosen["oracle_ctr"], chosen["oracle_revenue_per_impression"] = 0.0985, 1.15
    fig = tradeoff_scatter(sweep, sweep.iloc[0], chosen, max_ctr_drop=0.03)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(["3% CTR budget (estimated)", "CTR-optimal",
                                     "chosen (estimate, 95% CI)",
                                     "chosen: truth we could not know"])  # fmt: skip
    budget = [line for line in ax.get_lines() if line.get_linestyle() == ":"][0]
    assert np.allclose(budget.get_xdata(), 0.97 * 0.10)
    sizes = ax.collections[0].get_sizes()
    assert sizes.tolist() == [60, 60, 15]  # Pareto points drawn big
    assert len(fig.axes) == 2  # the scatter and its diversity colour bar
    import matplotlib.pyplot as plt

    plt.close(fig)
