"""Scale-out on CPU: MirroredStrategy over 2 logical CPUs and a 2-process MultiWorkerMirrored run.

Each run happens in fresh interpreters: logical devices and collective ops must be set up
before TensorFlow initialises its runtime. oneDNN's custom CPU ops are switched off there:
with them, TF 2.21 crashed natively (heap corruption / SIGSEGV) in multi-replica CPU steps.
"""

import json
import re
import socket

import numpy as np
import pytest
import tensorflow as tf
from train_support import TINY_FLAGS, run_python, start_python, write_lip_records

pytestmark = pytest.mark.slow  # training in separate processes, two of them a multi-worker cluster

TRAIN_CODE = "import sys; from spd_tf.training.cli import main; sys.exit(main({argv!r}))"
NO_ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "0"}
TWO_LOGICAL_CPUS = (
    "import tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
)


@pytest.fixture(scope="module")
def lip_records(shared_data, tmp_path_factory):
    return write_lip_records(shared_data, tmp_path_factory.mktemp("lip"))


def checkpoint_variables(checkpoint_dir):
    """{name: value} of every variable (model, optimizer, step) in the latest checkpoint."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoint_dir)))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.endswith("VARIABLE_VALUE")
    }


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_mirrored_strategy_over_two_logical_cpus(lip_records, tmp_path):
    argv = ["--data", lip_records, "--variant", "sp", "--strategy", "mirrored", "--steps", "3",
            "--run-dir", str(tmp_path), *TINY_FLAGS]
    done = run_python(TWO_LOGICAL_CPUS + TRAIN_CODE.format(argv=argv), NO_ONEDNN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in done.stdout
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    weights = checkpoint_variables(tmp_path / "checkpoints")
    assert weights and all(np.isfinite(v).all() for v in weights.values() if v.dtype.kind == "f")


def test_mirrored_strategy_trains_depth_and_3d_pose_beside_parsing_and_pose(tmp_path):
    """The 3D tasks under tf.distribute: two replicas, every task's loss finite (issue 33)."""
    from spd_tf.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", 8, 0, (64, 64), num_shards=1, scene="3d", label_set="surreal")
    argv = ["--data", str(tmp_path / "data" / "train-*.tfrecord"), "--tasks", "segmentation,pose,depth,pose3d",
            "--label-set", "surreal", "--strategy", "mirrored", "--steps", "2", "--run-dir", str(tmp_path / "run"),
            *TINY_FLAGS]
    done = run_python(TWO_LOGICAL_CPUS + TRAIN_CODE.format(argv=argv), NO_ONEDNN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in done.stdout
    log = done.stdout + done.stderr  # the progress lines (with the losses) go to stderr
    assert "loss_depth=" in log and "loss_pose3d=" in log
    assert not re.search(r"loss_\w+=(nan|inf)", log.lower()), log[-2000:]
    weights = checkpoint_variables(tmp_path / "run" / "checkpoints")
    shapes = {v.shape for v in weights.values()}
    assert (1, 1, 16, 20) in shapes and (1, 1, 32, 64) in shapes  # the depth and pose3d prediction convs
    assert all(np.isfinite(v).all() for v in weights.values() if v.dtype.kind == "f")


def test_two_worker_multi_worker_mirrored_run_ends_with_equal_weights(lip_records, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    argv = ["--data", lip_records, "--variant", "s", "--steps", "3", "--run-dir", str(tmp_path), *TINY_FLAGS]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(start_python(TRAIN_CODE.format(argv=argv), {"TF_CONFIG": json.dumps(tf_config), **NO_ONEDNN}))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    assert "Strategy with 2 replica(s)" in outputs[0][0]  # MultiWorkerMirrored = CollectiveAllReduce
    chief = checkpoint_variables(tmp_path / "checkpoints")
    other = checkpoint_variables(tmp_path / "worker-1" / "checkpoints")
    assert chief.keys() == other.keys() and chief
    # Trained weights are all-reduced, so equal; BN moving statistics are each worker's own
    # running averages (only --sync-bn layers share them) and train_seconds its own clock, so
    # they are left out.
    trained = [name for name in chief if "moving_" not in name and "train_seconds" not in name]
    assert len(trained) > len(chief) // 2
    for name in trained:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert (tmp_path / "config.json").exists()  # written by the chief only
    assert not (tmp_path / "worker-1" / "config.json").exists()
