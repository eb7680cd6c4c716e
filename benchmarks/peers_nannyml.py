"""NannyML's UnivariateDriftCalculator on two Parquet files (run with benchmarks/.peers/nannyml/bin/python).

Continuous methods: kolmogorov_smirnov, wasserstein, jensen_shannon and
hellinger (NannyML has no PSI or KL for continuous columns). One chunk
(``chunk_number=1``): the whole current file is one window, like loopwatch's.
``fit(reference)`` is NannyML's reference profile (it also calculates the
reference chunk itself, for thresholds); ``calculate(current)`` the drift.

Variants:

* ``default``: NannyML's defaults. Its KS and Wasserstein switch to an
  *estimated* computation on 10,000 equal-width bins once the reference has
  10,000 rows or more (``calculation_method='auto'``), so at 100k and 1M rows
  they are approximations.
* ``exact``: ``computation_params={'kolmogorov_smirnov': {}, 'wasserstein': {},
  'calculation_method': 'exact'}`` -- NannyML 0.13.1 requires the method's name as
  a key but reads ``calculation_method`` from the top level of the dict -- so KS is
  ``scipy.stats.ks_2samp`` and Wasserstein ``scipy.stats.wasserstein_distance``
  on the raw values, comparable with scipy and loopwatch (checked: same values).
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import peers_common  # noqa: E402

VARIANTS = ["default", "exact"]
METHODS = ["kolmogorov_smirnov", "wasserstein", "jensen_shannon", "hellinger"]


def main() -> None:
    warnings.filterwarnings("ignore")
    import nannyml as nml

    args = peers_common.parse_args(VARIANTS)

    def prepare(path: str):
        reference = peers_common.read_frame(path)
        columns = list(reference.columns)
        params = None
        if args.variant == "exact":
            # NannyML 0.13.1 checks that the method's name is a key of computation_params, then reads
            # 'calculation_method' from the top level of the same dict (not from the method's entry)
            params = {"kolmogorov_smirnov": {}, "wasserstein": {}, "calculation_method": "exact"}
        calc = nml.UnivariateDriftCalculator(
            column_names=columns, continuous_methods=METHODS, chunk_number=1, computation_params=params
        )
        return calc.fit(reference)

    def compute(calc, path: str):
        return calc.calculate(peers_common.read_frame(path))

    def summarise(result) -> dict:
        df = result.filter(period="analysis").to_df()
        out = {}
        for column in ("f00", "f01", "f02"):
            for method in METHODS:
                out[f"{column}/{method}"] = float(df[(column, method, "value")].iloc[0])
        return out

    peers_common.run(
        peer="nannyml",
        version=nml.__version__,
        args=args,
        prepare=prepare,
        compute=compute,
        summarise=summarise,
        notes="'precomputed' = UnivariateDriftCalculator already fitted on the reference before the timer.",
    )


if __name__ == "__main__":
    main()
