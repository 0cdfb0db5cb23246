"""Case-mix bootstrap cost: ``assessment.casemix.adjust`` against the bare numpy draws it cannot avoid
(one Beta and one Binomial per unit × category cell per resample), measured in the same run.

    PYTHONPATH=. python bench/bench_casemix.py [units] [categories] [resamples]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from assessment import casemix


def main(units: int = 300, categories: int = 30, resamples: int = casemix.DEFAULT_RESAMPLES) -> None:
    """Print seconds for the adjusted table and for the bare draws, and their ratio."""
    rng = np.random.default_rng(0)
    den = rng.integers(1, 40, size=units * categories)
    num = rng.binomial(den, 0.8)
    strata = pd.DataFrame(
        {
            "unit_id": np.repeat(np.arange(units), categories),
            "stratum": np.tile(np.arange(categories), units),
            "num": num,
            "den": den,
        }
    )
    start = time.perf_counter()
    casemix.adjust(strata, "response_rate", resamples=resamples)
    full = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(resamples):
        rng.binomial(den, rng.beta(num + 0.5, den - num + 0.5))
    bare = time.perf_counter() - start
    cells = units * categories
    print(
        f"{cells} cells × {resamples} resamples: adjust {full:.2f} s, bare draws {bare:.2f} s, ratio {full / bare:.2f}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
