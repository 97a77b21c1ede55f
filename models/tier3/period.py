"""The dominant period of a series, from its own autocorrelation (no period assumed).

Peers detect periods from the data rather than assuming a day and a week: Crane's DSP predictor
reads them off the FFT and checks them with the autocorrelation, AHPA uses RobustPeriod. The
rule here is the autocorrelation step alone, which is what a period means for a forecaster that
repeats the past ("the load one period ago"):

* the autocorrelation function (ACF) of the mean-removed series, computed with the FFT;
* candidate periods are the ACF's local maxima (higher than every lag within 10 % of them) in
  ``[min_lag, max_lag]``, where the series covers at least ``min_cycles`` periods;
* the answer is the candidate with the highest ACF if that is at least ``min_acf``; otherwise
  there is no period (None).

A smooth signal is strongly autocorrelated at short lags; only peaks count, so a daily cycle
gives a day and not a minute. Whether repeating the past at that period actually predicts
better than the current level is decided elsewhere, by measured skill (:mod:`.nowcast`).
"""

from __future__ import annotations

import numpy as np


def autocorrelation(values: np.ndarray) -> np.ndarray:
    """ACF at lags 0..n-1 of ``values`` (NaNs as the mean), by the FFT; ``acf[0] == 1``."""
    x = np.asarray(values, dtype=float)
    x = np.where(np.isfinite(x), x, np.nanmean(x) if np.isfinite(x).any() else 0.0)
    x = x - x.mean()
    n = x.size
    if n < 2 or not np.any(x):
        return np.zeros(max(n, 1))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    return acf / acf[0]


def dominant_period(values: np.ndarray, min_lag: int, max_lag: int, min_acf: float = 0.3,
                    min_cycles: float = 2.0) -> int | None:
    """The dominant period in samples, or None (see the module docstring).

    Bursts every 20 samples over noise:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(10, 1, 400)
    >>> x[::20] += 30
    >>> dominant_period(x, min_lag=5, max_lag=100)
    20
    >>> dominant_period(rng.normal(10, 1, 400), min_lag=5, max_lag=100) is None
    True
    """
    acf = autocorrelation(values)
    n = acf.size
    top = min(int(max_lag), int(n / min_cycles))
    low = max(1, int(min_lag))
    if top <= low:
        return None
    best, best_acf = None, min_acf
    for lag in range(low, top + 1):
        value = acf[lag]
        if value < best_acf:
            continue
        reach = max(1, lag // 10)
        lo, hi = max(1, lag - reach), min(n - 1, lag + reach)
        if value >= acf[lo:hi + 1].max():
            best, best_acf = lag, value
    return best
