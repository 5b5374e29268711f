"""Helpers shared by the tests/test_train_*.py files: tiny configs and real LIP records."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import tensorflow as tf

from spd_tf.data.layouts import read_lip_pose_csv
from spd_tf.data.schema import encode_example

REPO_ROOT = Path(__file__).resolve().parents[1]
LIP_IDS = ("684_2150041", "86_185913")

# Flags of the smallest model that still runs every branch (CPU tests).
TINY_FLAGS = [
    "--input-size", "64", "--backbone-depth", "18", "--width-multiplier", "0.125",
    "--refinement-stages", "1", "--batch-size", "2", "--backbone-weights", "none", "--no-eval", "--no-export",
    "--log-every", "1",
]


def write_lip_records(shared_data: Path, out_dir: Path) -> str:
    """The two real LIP samples (parsing everywhere, pose for 86_185913) as one TFRecord."""
    lip = shared_data / "lip_sample"
    poses = read_lip_pose_csv(lip / "lip_val_set.csv")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "lip-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for source_id in LIP_IDS:
            image_path = lip / "images" / f"{source_id}.jpg"
            height, width = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED).shape[:2]
            example = encode_example(
                image_path.read_bytes(),
                height=height,
                width=width,
                source_id=source_id,
                dataset="lip",
                parsing_png=(lip / "parsing" / f"{source_id}.png").read_bytes(),
                keypoints=poses.get(source_id),
            )
            writer.write(example.SerializeToString())
    return str(path)


def run_python(code: str, env_extra: dict = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (device setup must precede TF initialisation)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT), **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)


def run_example(script: str, arguments, env_extra: dict, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess:
    """examples/SCRIPT ARGUMENTS with bash, its `python` being the interpreter running the tests."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PATH=path, **env_extra)
    return subprocess.run(["bash", str(REPO_ROOT / "examples" / script), *map(str, arguments)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def start_python(code: str, env_extra: dict = None) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT), **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)


def write_damaged_shard(records: str, path: Path, good: int) -> str:
    """`good` records (the samples of `records`, repeated) followed by a truncated one."""
    samples = [r.numpy() for r in tf.data.TFRecordDataset(records)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(good + 1):
            writer.write(samples[index % len(samples)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(samples[good % len(samples)]) // 2])
    return str(path)
