"""Precision names -> Keras dtype policies, shared by training and by loading for inference.

Below both (training/precision.py resolves `auto` and loss scaling on top of it; artifacts
rebuilds a model in an inference precision), so neither has to import the other.
"""

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# Inference precisions (export, evaluate, predict): float16 is a training-only choice.
NETWORK_PRECISIONS = ("float32", "bfloat16")


def inference_policy(precision: str) -> str:
    """Keras dtype policy of an inference precision (float32 -> float32, bfloat16 -> mixed_bfloat16)."""
    if precision not in NETWORK_PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(NETWORK_PRECISIONS)}")
    return POLICIES[precision]
