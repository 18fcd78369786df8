"""Metrics: classification (torchmetrics), targeting (gain curve), uplift (Qini, AUUC, uplift@k) and off-policy
evaluation (IPS, SNIPS, doubly robust)."""

from deepromo.metrics.classification import binary_report, expected_calibration_error, roc_auc
from deepromo.metrics.ope import PolicyValueEstimate, expected_under, off_policy_value, target_probability_of
from deepromo.metrics.targeting import cumulative_gain_curve, gain_at
from deepromo.metrics.uplift import auuc, qini_coefficient, qini_curve, uplift_at_k, uplift_curve

__all__ = [
    "binary_report",
    "roc_auc",
    "expected_calibration_error",
    "cumulative_gain_curve",
    "gain_at",
    "qini_curve",
    "uplift_curve",
    "qini_coefficient",
    "auuc",
    "uplift_at_k",
    "PolicyValueEstimate",
    "off_policy_value",
    "target_probability_of",
    "expected_under",
]
