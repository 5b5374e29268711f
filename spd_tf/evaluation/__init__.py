"""Evaluation stage: metrics (parsing, pose), densepose_metrics (GPS), instance_metrics (AP^r,
AP^p), the evaluator (examples -> scores), tables (the report), predictors (a model or
prediction files per example) and cli (spd-evaluate)."""

from spd_tf._moved import forwarding

# The names of the former module spd_tf.evaluation (now spd_tf.evaluation.evaluator), one release.
__getattr__ = forwarding("spd_tf.evaluation", "spd_tf.evaluation.evaluator")
