"""Picks the tf.distribute strategy: one device, several local devices, or several machines.

TensorFlow's own engine does the scale-out; this module only decides which strategy a run
gets, so the training loop is written once against `tf.distribute.Strategy`.
"""

import json
import os

import tensorflow as tf

from spd_tf.training.errors import SetupSettingError, TrainingSetupError


def _cluster_workers() -> int:
    """Number of workers TF_CONFIG describes (0 when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except json.JSONDecodeError as error:
        raise TrainingSetupError(f"TF_CONFIG is not valid JSON: {error}") from None
    return len(cluster.get("worker", ())) + len(cluster.get("chief", ()))


def _local_devices() -> list:
    """All GPUs, or all (logical) CPU devices when there is no GPU."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def select_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored for several GPUs,
    else the default (single-device) strategy. `mirrored` without GPUs mirrors over the
    logical CPU devices (how the tests exercise it on a CPU-only machine)."""
    # Only physical devices are listed before the strategy exists: listing logical devices
    # initialises the runtime, after which MultiWorkerMirroredStrategy can no longer be set up.
    workers = _cluster_workers()
    if name == "auto":
        if workers > 0:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_local_devices())
    if name == "multi_worker":
        if workers == 0:
            raise SetupSettingError(
                "{TrainConfig.strategy} multi_worker needs TF_CONFIG describing the cluster (e.g. {example})",
                example='{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}',
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise SetupSettingError("{TrainConfig.strategy} {name!r} is not one of auto, default, mirrored, multi_worker",
                            name=name)


def task_identity(strategy: tf.distribute.Strategy) -> tuple:
    """(task_type, task_id) of this process; ("worker", 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "worker", 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief writes config, summaries, exports and the run's main checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    task_type, task_id = task_identity(strategy)
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
