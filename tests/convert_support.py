"""Helpers shared by the converter tests: a LIP layout built from the real samples, shard reading."""

import os
from pathlib import Path

import tensorflow as tf

from spd_tf.data import schema

LIP_IDS = {"train": "684_2150041", "val": "86_185913"}


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def build_official_lip(shared: Path, root: Path) -> Path:
    """The official zips unpacked: TrainVal_images/TrainVal_images/..., nested annotation folders."""
    sample = shared / "lip_sample"
    images = root / "TrainVal_images" / "TrainVal_images"
    segs = root / "TrainVal_parsing_annotations" / "TrainVal_parsing_annotations"
    for split, source_id in LIP_IDS.items():
        link(sample / "images" / f"{source_id}.jpg", images / f"{split}_images" / f"{source_id}.jpg")
        link(sample / "parsing" / f"{source_id}.png", segs / f"{split}_segmentations" / f"{source_id}.png")
        (images / f"{split}_id.txt").write_text(source_id + "\n")
    link(sample / "lip_val_set.csv", root / "TrainVal_pose_annotations" / "lip_val_set.csv")
    return root


def decode_all(directory: Path, split: str) -> dict:
    files = sorted(str(p) for p in directory.glob(f"{split}-*-of-*.tfrecord"))
    return {
        ex["source_id"].numpy().decode(): ex
        for ex in map(schema.decode_example, tf.data.TFRecordDataset(files))
    }
