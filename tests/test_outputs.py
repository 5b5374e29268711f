"""The output table is the one list of outputs: the docs copy it, and the code reads it."""

from pathlib import Path

import numpy as np
import pytest

from spd_tf.deploy import client
from spd_tf.inference import output_spec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "interfaces.md"


def test_docs_show_the_table():
    assert output_spec.markdown_table() in DOCS.read_text(), (
        "docs/interfaces.md is out of date: paste spd_tf.inference.output_spec.markdown_table() under 'Serving signatures'")


def test_client_types_every_output_from_the_table():
    row = {name: [[0]] for name in output_spec.BY_NAME}
    decoded = client.decode_rest_response({"predictions": [row]})
    assert {name: array.dtype.kind for name, array in decoded.items()} == {
        output.name: "i" if output.integer else "f" for output in output_spec.OUTPUTS}


def test_tasks_of_output_names():
    assert output_spec.tasks_of(["image_size", "labels"]) == ("segmentation",)
    assert output_spec.tasks_of(["densepose_iuv", "keypoints", "labels", "unknown"]) == (
        "segmentation", "pose", "densepose")


def test_spec_names_the_known_outputs():
    assert output_spec.spec("labels").fill == 255
    with pytest.raises(KeyError, match="'label'.*labels"):
        output_spec.spec("label")


def test_split_batch_crops_spatial_outputs_and_keeps_per_image_ones():
    from spd_tf import inference

    results = {output.name: np.zeros((2, 5, 7, 3) if output.spatial else (2, 4), output.dtype)
               for output in output_spec.OUTPUTS if output.name != "image_size"}
    results["image_size"] = np.array([[3, 6], [5, 2]], np.int32)
    first, second = inference.split_batch(results)
    for output in output_spec.OUTPUTS:
        if output.spatial:
            assert first[output.name].shape[:2] == (3, 6) and second[output.name].shape[:2] == (5, 2)
        else:
            assert second[output.name].shape == results[output.name].shape[1:]
