"""Alibi Detect's KSDrift on two Parquet files (run with benchmarks/.peers/alibi/bin/python).

``KSDrift(x_ref, p_val=0.05)`` is built on the reference (its reference
profile: it keeps ``x_ref``); ``predict(x)`` runs ``scipy.stats.ks_2samp``
feature by feature (asymptotic p-values, Bonferroni over features). KS only:
Alibi Detect has no Wasserstein, KL, JS or PSI detector for tabular features.
Installed without TensorFlow or PyTorch: KSDrift needs neither.
"""

from __future__ import annotations

import warnings

import peers_common

VARIANTS = ["default"]


def main() -> None:
    warnings.filterwarnings("ignore")
    import alibi_detect
    from alibi_detect.cd import KSDrift

    args = peers_common.parse_args(VARIANTS)

    def prepare(path: str):
        return KSDrift(peers_common.read_frame(path).to_numpy(), p_val=0.05)

    def compute(detector, path: str):
        return detector.predict(peers_common.read_frame(path).to_numpy())

    def summarise(result) -> dict:
        data = result["data"]
        out = {"is_drift": int(data["is_drift"])}
        for i in range(3):
            out[f"f{i:02d}/ks_statistic"] = float(data["distance"][i])
            out[f"f{i:02d}/p_value"] = float(data["p_val"][i])
        return out

    peers_common.run(
        peer="alibi-detect",
        version=alibi_detect.__version__,
        args=args,
        prepare=prepare,
        compute=compute,
        summarise=summarise,
        notes="'precomputed' = KSDrift already constructed on the reference before the timer.",
    )


if __name__ == "__main__":
    main()
