"""Converter plumbing: checked image/label encoding, the ordered worker pool, atomic shards."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spd_tf.data import schema
from tfrecords_tools import common

REPO_ROOT = Path(__file__).resolve().parents[1]


def _final_shards(directory: Path):
    return sorted(p.name for p in directory.glob("*.tfrecord"))


def test_grayscale_jpeg_is_stored_as_is_and_decodes_to_rgb(shared_data):
    path = shared_data / "lip_sample" / "images" / "86_185913.jpg"
    encoded = common.encode_image_file(path)
    assert encoded.data == path.read_bytes()
    assert (encoded.height, encoded.width) == (377, 130)
    assert "grayscale" in encoded.fixes[0]
    decoded = tf.io.decode_image(encoded.data, channels=3).numpy()
    assert decoded.shape == (377, 130, 3)


def test_cmyk_and_other_formats_are_reencoded(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    encoded = common.encode_image_file(tmp_path / "cmyk.jpg")
    rgb = tf.io.decode_jpeg(encoded.data, channels=3).numpy()
    assert rgb.shape == (6, 8, 3) and rgb[..., 0].min() > 200 and rgb[..., 1:].max() < 60
    assert "re-encoded as RGB JPEG" in encoded.fixes[0]

    Image.new("RGB", (5, 4), (10, 20, 30)).save(tmp_path / "x.bmp")
    encoded = common.encode_image_file(tmp_path / "x.bmp")
    assert tf.io.decode_png(encoded.data).numpy()[0, 0].tolist() == [10, 20, 30]


def test_corrupt_and_truncated_images_raise_input_error(shared_data, tmp_path):
    data = (shared_data / "lip_sample" / "images" / "684_2150041.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    for name in ("cut.jpg", "noise.jpg"):
        with pytest.raises(common.InputError, match=name) as error:
            common.encode_image_file(tmp_path / name)
        assert "BytesIO" not in str(error.value)  # PIL's buffer repr replaced by the file name
    assert str(error.value).endswith("cannot identify image file noise.jpg")


def test_label_checks(tmp_path):
    label = np.zeros((4, 6), np.uint8)
    label[0, :3] = (19, 255, 3)
    Image.fromarray(label).save(tmp_path / "ok.png")
    png = common.encode_label_file(tmp_path / "ok.png", 4, 6, 20)
    np.testing.assert_array_equal(tf.io.decode_png(png, channels=1).numpy()[..., 0], label)
    with pytest.raises(common.InputError, match="label size 6x4 != image size 5x4"):
        common.encode_label_file(tmp_path / "ok.png", 4, 5, 20)
    with pytest.raises(common.InputError, match=r"label values \[19\] outside 0-17/255"):
        common.encode_label_file(tmp_path / "ok.png", 4, 6, 18)


def test_ordered_map_keeps_input_order_in_a_process_pool():
    values = list(range(-30, 30))
    assert list(common.ordered_map(abs, values, workers=2)) == [abs(v) for v in values]


def _example_or_interrupt(index: int) -> common.Converted:
    if index == 3:
        raise KeyboardInterrupt  # not an input problem: must abort the conversion
    if index == 1:
        raise common.InputError("bad input 1")
    example = schema.encode_example(b"x", height=1, width=1, source_id=str(index), dataset="synthetic")
    return common.Converted(example.SerializeToString(), ())


def test_input_errors_are_skipped_and_an_abort_leaves_no_final_shard(tmp_path):
    report = common.ConversionReport("synthetic", "-", tmp_path)
    items = [(f"item{i}", i) for i in range(3)]
    summary = common.convert_split(report, "ok", items, _example_or_interrupt, out_dir=tmp_path, examples_per_shard=2)
    assert summary["written"] == 2 and summary["shards"] == ["ok-00000-of-00002.tfrecord", "ok-00001-of-00002.tfrecord"]
    assert report.skipped == [{"split": "ok", "item": "item1", "reason": "bad input 1"}]

    items = [(f"item{i}", i) for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        common.convert_split(report, "aborted", items, _example_or_interrupt, out_dir=tmp_path)
    assert _final_shards(tmp_path) == summary["shards"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_shards_of_an_older_run_are_reported(tmp_path):
    (tmp_path / "s-00000-of-00003.tfrecord").write_bytes(b"")
    report = common.ConversionReport("synthetic", "-", tmp_path)
    with pytest.warns(UserWarning, match="1 s shard.* of another run"):
        common.convert_split(report, "s", [("a", 0)], _example_or_interrupt, out_dir=tmp_path)
    assert "s-00000-of-00003.tfrecord" in report.to_dict()["warnings"][0]
    assert _final_shards(tmp_path) == ["s-00000-of-00001.tfrecord", "s-00000-of-00003.tfrecord"]


@pytest.mark.slow
def test_killed_conversion_leaves_no_final_shard(shared_data, tmp_path):
    """SIGKILL mid-conversion: only `.tmp-` names may remain, never a final shard or report."""
    sample = shared_data / "lip_sample"
    images, segs = tmp_path / "lip" / "train_images", tmp_path / "lip" / "train_segmentations"
    images.mkdir(parents=True)
    segs.mkdir()
    for i in range(2000):
        os.symlink(sample / "images" / "684_2150041.jpg", images / f"{i}_{i}.jpg")
        os.symlink(sample / "parsing" / "684_2150041.png", segs / f"{i}_{i}.png")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "tfrecords_tools.convert_lip", "--data", str(tmp_path / "lip"),
         "--splits", "train", "--out", str(out), "--workers", "1"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".tmp-*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, "conversion ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert list(out.glob(".tmp-train-*"))
    assert _final_shards(out) == [] and not (out / "lip-report.json").exists()
    # The next run of the same output removes the dead process's temporary shards.
    report = common.ConversionReport("synthetic", "-", out)
    common.convert_split(report, "train", [("a", 0)], _example_or_interrupt, out_dir=out)
    assert not list(out.glob(".tmp-*")) and _final_shards(out) == ["train-00000-of-00001.tfrecord"]


def test_empty_shards_never_get_final_names(tmp_path):
    report = common.ConversionReport("synthetic", "-", tmp_path)
    items = [("a", 0), ("b", 1), ("c", 1)]  # 3 planned shards, 2 inputs bad
    summary = common.convert_split(report, "s", items, _example_or_interrupt, out_dir=tmp_path, examples_per_shard=1)
    assert summary["written"] == 1 and _final_shards(tmp_path) == summary["shards"] == ["s-00000-of-00001.tfrecord"]
    summary = common.convert_split(report, "bad", [("b", 1)], _example_or_interrupt, out_dir=tmp_path)
    assert summary["written"] == 0 and summary["shards"] == []
    assert _final_shards(tmp_path) == ["s-00000-of-00001.tfrecord"] and not list(tmp_path.glob(".tmp-*"))


def _atr_layout(root: Path) -> Path:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()
    (root / "JPEGImages" / "a.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "SegmentationClassAug" / "a.png")
    return root


def test_cli_fails_when_every_input_is_bad(tmp_path, capsys):
    from tfrecords_tools import convert_atr

    code = convert_atr.main(["--data", str(_atr_layout(tmp_path / "atr")), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing written, every input was skipped" in err
    assert _final_shards(tmp_path / "out") == [] and (tmp_path / "out" / "atr-report.json").exists()


@pytest.mark.parametrize("out", ["file", "file/sub"])  # an existing file; a path that cannot be created
def test_cli_unusable_out_dir_is_one_line(tmp_path, capsys, out):
    from tfrecords_tools import convert_atr, convert_lip

    (tmp_path / "file").write_text("x")
    for main in (convert_atr.main, convert_lip.main):
        with pytest.raises(SystemExit) as exit_info:
            main(["--data", str(tmp_path), "--out", str(tmp_path / out)])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1
        assert f"--out {tmp_path / out} is not writable" in err
