"""Exact match, shipped with effopt's reference loops so that it loads offline by path.

`evaluate.load("exact_match")` fetches the module from a hub; this copy is loaded with
`evaluate.load("<repo>/reference/metrics/exact_match")` and needs no network.
"""

import datasets
import evaluate

_DESCRIPTION = "Share of predictions that equal their reference after stripping surrounding whitespace."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of str.
    references: list of str, the same length.
Returns:
    exact_match: float in [0, 1].
"""


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        if not predictions:
            return {"exact_match": 0.0}
        hits = sum(p.strip() == r.strip() for p, r in zip(predictions, references))
        return {"exact_match": hits / len(predictions)}
