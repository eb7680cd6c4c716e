"""The domain-classifier drift test: can a classifier tell current rows from reference rows?"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from loopwatch.errors import InvalidInput
from loopwatch.stats.multivariate import (
    FloatArray,
    MultivariateResult,
    _alpha,
    _array,
    _generator,
    _same_columns,
    _subsample,
)


def _split(x: FloatArray, n_fit: int, gen: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    order = gen.permutation(x.shape[0])
    return x[order[:n_fit]], x[order[n_fit:]]


#: Least rows on each side: half of the smaller side fits the classifier, the rest are scored,
#: and both need a row of each side.
DOMAIN_MIN_ROWS = 4


def domain_classifier_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    max_samples: int = 5000,
    alpha: float = 0.05,
    classifier: Any = None,
    max_iter: int = 100,
    rng: np.random.Generator | int,
) -> MultivariateResult:
    """Can a classifier tell current rows from reference rows?

    Each side is subsampled to at most ``max_samples`` rows and split at
    random, per side (so the split is stratified), into fit rows and test
    rows. The fit rows are balanced: half the smaller side from each, so the
    classifier does not learn the class prior (a small current window would
    otherwise be drowned by a large reference); every other row is a test
    row (equal sides split in halves). The classifier never saw the test
    rows, so under no drift their scores are i.i.d. whatever it learnt: the
    held-out AUC is exactly the Mann-Whitney U statistic
    ``U / (n_current * n_reference)`` and ``p_value`` is the one-sided
    Mann-Whitney test (current scores greater), of exact size at any sample
    size. The price of this proper null is the rows that only fit.
    (Balancing by sample weights instead made scikit-learn's binning ten
    times slower.)

    The default classifier is a small HistGradientBoostingClassifier, seeded
    from ``rng``; pass any scikit-learn classifier with ``predict_proba`` (it is
    cloned; seed it yourself). OpenMP is limited to one thread while it runs
    (process-wide, restored after): at these sizes thread start-up dominates,
    and on a busy machine oversubscribed threads made fits 100 times slower.

    >>> import numpy as np
    >>> rng = np.random.default_rng(4)
    >>> ref = rng.normal(size=(600, 2))
    >>> domain_classifier_test(ref, rng.normal(size=(600, 2)), rng=0).drift
    False
    >>> domain_classifier_test(ref, rng.normal(size=(600, 2)) * [1.0, 2.0], rng=0).drift
    True
    """
    # Imported here: importing the statistics must not pull in scikit-learn's estimators.
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x = _array(reference, "reference", min_rows=DOMAIN_MIN_ROWS)
    y = _array(current, "current", min_rows=DOMAIN_MIN_ROWS)
    _same_columns(x, y)
    level = _alpha(alpha)
    if max_samples < 4:
        raise InvalidInput("max_samples must be at least 4")
    gen = _generator(rng)
    x, y = _subsample(x, max_samples, gen), _subsample(y, max_samples, gen)
    n_fit = min(x.shape[0], y.shape[0]) // 2
    x_fit, x_test = _split(x, n_fit, gen)
    y_fit, y_test = _split(y, n_fit, gen)
    if classifier is None:
        model = HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
            early_stopping=False, random_state=int(gen.integers(2**31 - 1)),
        )
    else:
        model = clone(classifier)
    features = np.vstack([x_fit, y_fit])
    labels = np.r_[np.zeros(n_fit), np.ones(n_fit)]
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(features, labels)
        s_ref = model.predict_proba(x_test)[:, 1]
        s_cur = model.predict_proba(y_test)[:, 1]
    n_c, n_r = len(s_cur), len(s_ref)
    if np.ptp(np.r_[s_ref, s_cur]) == 0.0:
        # One score for every row: the classifier found nothing (and the
        # normal approximation would divide by a zero variance).
        auc, p_value = 0.5, 1.0
    else:
        res = stats.mannwhitneyu(s_cur, s_ref, alternative="greater")
        auc, p_value = float(res.statistic) / (n_c * n_r), float(res.pvalue)
    return MultivariateResult(
        "domain_classifier", auc, p_value, None, p_value <= level,
        extra={"n_fit": int(len(labels)), "n_test_reference": n_r, "n_test_current": n_c,
               "classifier": type(model).__name__},
    )
