"""spd_tf.evaluation.instance_metrics: hand cases worked out in the comments, and two multi-image cases
whose expected numbers were printed by the reference code itself (see `REFERENCE_*`)."""

import numpy as np
import pytest

from spd_tf import labels
from spd_tf.evaluation.instance_metrics import (
    IOU_THRESHOLDS,
    PartInstanceAP,
    PersonAP,
    voc_ap,
)

CLASSES = labels.LABEL_SETS["cihp"].classes
HAIR, UPPER, PANTS, FACE, LEFT_ARM = 2, 5, 9, 13, 14


def _score(images):
    """(AP^r result, AP^p result) of [(instances, scores, parsing, gt_persons, gt_parsing)]."""
    part, person = PartInstanceAP(CLASSES), PersonAP(len(CLASSES))
    for index, image in enumerate(images):
        part.update(*image, name=f"image{index}")
        person.update(*image, name=f"image{index}")
    return part.result(), person.result()


def _two_people():
    """4 x 8: person 1 on columns 0-3, person 2 on 4-7; hair on row 0, upper clothes below."""
    persons = np.zeros((4, 8), np.int32)
    persons[:, :4], persons[:, 4:] = 1, 2
    parsing = np.full((4, 8), UPPER, np.int32)
    parsing[0] = HAIR
    return persons, parsing


# --- hand cases ----------------------------------------------------------------------------


def test_perfect_prediction_scores_one_everywhere():
    persons, parsing = _two_people()
    part, person = _score([(persons, [0.9, 0.8], parsing, persons, parsing)])
    assert part["ap_per_threshold"] == [1.0] * 9 and part["ap_vol"] == 1.0
    assert part["classes_scored"] == 2 and part["num_ground_truth"] == 4
    assert person["ap_per_threshold"] == [1.0] * 9


def test_one_missed_person_halves_recall():
    persons, parsing = _two_people()
    predicted = np.where(persons == 1, 1, 0)
    # Every class and the person level: 1 of 2 found at precision 1 -> AP 0.5.
    part, person = _score([(predicted, [0.7], np.where(predicted, parsing, 0), persons, parsing)])
    assert part["ap_per_threshold"] == [0.5] * 9
    assert person["ap_per_threshold"] == [0.5] * 9


def test_false_positive_ranked_first():
    persons, parsing = _two_people()
    gt = np.where(persons == 1, 1, 0)
    gt_parsing = np.where(gt, parsing, 0)
    # Predicted person 2 (score 0.9) stands where nobody is; person 1 (0.5) is exact.
    # Ranked: FP then TP -> precision 0, then recall 1 at precision 1/2 -> AP 0.5.
    part, person = _score([(persons, [0.5, 0.9], parsing, gt, gt_parsing)])
    assert part["ap_per_threshold"] == [0.5] * 9
    assert person["ap_per_threshold"] == [0.5] * 9
    # Ranked the other way round, the false positive comes after full recall: AP 1.
    part, person = _score([(persons, [0.9, 0.5], parsing, gt, gt_parsing)])
    assert part["ap_per_threshold"] == [1.0] * 9 and person["ap_per_threshold"] == [1.0] * 9


def test_split_person_and_iou_exactly_at_threshold():
    gt = np.ones((4, 8), np.int32)
    gt_parsing = np.full((4, 8), UPPER, np.int32)
    halves = np.where(np.arange(8) < 4, 1, 2)[None].repeat(4, 0)
    # AP^r: each half is an upper-clothes instance of IoU 16/32 = 0.5 with the one ground
    # truth. CIHP_PGN has no one-to-one matching, so both are true positives where 0.5 > t:
    # recall 1 then 2 at precision 1 -> AP 2 (sic, the reference's number); at t = 0.5 the
    # strict `>` makes both false positives.
    part, person = _score([(halves, [0.9, 0.8], gt_parsing, gt, gt_parsing)])
    assert part["ap_per_threshold"] == [2.0] * 4 + [0.0] * 5
    # AP^p: a half against the person: background IoU 0 / 16, upper 16 / 32 -> mean 0.25;
    # the better-scored half takes the person, the other is a false positive after it.
    assert person["ap_per_threshold"] == [1.0, 1.0] + [0.0] * 7


def test_part_iou_just_below_and_above_a_threshold():
    gt = np.zeros((2, 5), np.int32)
    gt[:, :] = 1
    gt_parsing = np.full((2, 5), FACE, np.int32)
    predicted = np.zeros((2, 5), np.int32)
    predicted[:, :3] = 1  # 6 of the 10 face pixels, nothing else: IoU 0.6 exactly
    part, _ = _score([(predicted, [0.5], np.where(predicted, FACE, 0), gt, gt_parsing)])
    assert part["ap_per_threshold"] == [1.0] * 5 + [0.0] * 4  # 0.6 > 0.5, not > 0.6


def test_class_without_ground_truth_is_left_out_of_the_mean():
    persons, parsing = _two_people()
    predicted_parsing = parsing.copy()
    predicted_parsing[3, :4] = PANTS  # pants nobody wears: its AP is undefined, not counted
    part, _ = _score([(persons, [0.9, 0.8], predicted_parsing, persons, parsing)])
    assert np.isnan(part["per_class"]["Pants"]).all()
    assert part["classes_scored"] == 2


def test_ignore_label_and_bad_input():
    persons, parsing = _two_people()
    gt_parsing = parsing.copy()
    gt_parsing[1:, :4] = labels.IGNORE_LABEL  # person 1's upper clothes not labelled
    part, person = _score([(persons, [0.9, 0.8], parsing, persons, gt_parsing)])
    # AP^r upper clothes: person 1's predicted part has no ground truth -> FP ranked first.
    assert part["per_class"]["UpperClothes"] == [0.5] * 9
    assert person["ap_per_threshold"] == [1.0] * 9  # ignore pixels are not counted
    metric = PersonAP(len(CLASSES))
    with pytest.raises(ValueError, match="image7: predicted person id 2 has no score"):
        metric.update(persons, [0.9], parsing, persons, parsing, name="image7")
    with pytest.raises(ValueError, match="image7: .*one \\[H, W\\] size"):
        metric.update(persons, [0.9, 0.8], parsing[:2], persons, parsing, name="image7")


def test_voc_ap_envelope():
    # Precision envelope: recall 0.5 at 1.0, recall 1.0 at 2/3 -> 0.5 + 0.5 * 2/3.
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 1 / 3)


# --- against the reference code --------------------------------------------------------------


def reference_case_a():
    """Two 12 x 16 images: a shifted person, a false positive and a split person."""
    gt1 = np.zeros((12, 16), np.int32)
    gt1[1:12, 1:7], gt1[2:12, 9:15] = 1, 2
    gp1 = np.zeros((12, 16), np.int32)
    gp1[1:4][gt1[1:4] > 0] = HAIR
    gp1[4:12][gt1[4:12] > 0] = UPPER
    gp1[8:12, 9:15] = PANTS
    pi1 = np.zeros((12, 16), np.int32)
    pi1[1:12, 2:8], pi1[3:12, 9:16], pi1[0:3, 12:16] = 1, 2, 3
    pp1 = np.zeros((12, 16), np.int32)
    pp1[pi1 > 0] = UPPER
    pp1[1:4, 2:8] = HAIR
    pp1[7:12, 9:16] = PANTS
    pp1[0:3, 12:16] = HAIR
    gt2 = np.zeros((12, 16), np.int32)
    gt2[0:12, 3:13] = 1
    gp2 = np.where(gt2 > 0, UPPER, 0)
    gp2[0:4, 5:11] = FACE
    gp2[4:12, 3:5] = LEFT_ARM
    pi2 = np.zeros((12, 16), np.int32)
    pi2[0:12, 3:9], pi2[0:12, 9:13] = 1, 2
    pp2 = np.where(pi2 > 0, UPPER, 0)
    pp2[0:4, 4:11] = FACE
    pp2[5:12, 3:5] = LEFT_ARM
    return [(pi1, [0.8, 0.6, 0.7], pp1, gt1, gp1), (pi2, [0.65, 0.4], pp2, gt2, gp2)]


def reference_case_b():
    """Three 10 x 10 images: a missed person, a duplicate-free crowd, an empty prediction."""
    gt1 = np.zeros((10, 10), np.int32)
    gt1[:, 0:4], gt1[:, 5:9] = 1, 2
    gp1 = np.where(gt1 > 0, UPPER, 0)
    gp1[0:2][gt1[0:2] > 0] = HAIR
    pi1 = np.where(gt1 == 2, 1, 0)
    pi1[0:3, 4:6] = 1
    pp1 = np.where(pi1 > 0, UPPER, 0)
    pp1[0:3][pi1[0:3] > 0] = HAIR
    gt2 = np.zeros((10, 10), np.int32)
    gt2[0:5, 0:5], gt2[0:5, 5:10], gt2[5:10, 0:10] = 1, 2, 3
    gp2 = np.full((10, 10), UPPER, np.int32)
    gp2[5:10] = PANTS
    gp2[0:5, 5:10] = FACE
    pi2 = gt2.copy()
    pi2[5:10, 8:10] = 2
    pp2 = gp2.copy()
    pp2[3:5, 0:5] = FACE
    gt3 = np.zeros((10, 10), np.int32)
    gt3[2:8, 2:8] = 1
    gp3 = np.where(gt3 > 0, HAIR, 0)
    empty = np.zeros((10, 10), np.int32)
    return [(pi1, [0.55], pp1, gt1, gp1), (pi2, [0.9, 0.3, 0.75], pp2, gt2, gp2),
            (empty, np.zeros(0), empty, gt3, gp3)]


# Printed by CIHP_PGN @ 0cf1cbe's evaluation/test_inst_part_ap.py (`compute_class_ap` per
# class, l. 151-272; the rows of the classes with ground truth averaged as its l. 288 does) and by Multi-Human-Parsing @ de6148e's v2 eval_mhp.py
# `eval_seg_ap(..., nb_class=20)` (AP_seg per threshold), both run unchanged apart from file
# paths (and Python 3 print/xrange, np.float -> float) in a scratch directory outside the
# project on the inputs written from these cases: part-instance PNG + txt, Instance_part
# ground truth with ids 20 (person - 1) + class, per-person MHP masks.
REFERENCE_CASE_A = {
    "ap_r": [1.2666666666666666, 1.1666666666666665, 1.1666666666666665, 0.9666666666666666,
             0.8111111111111111, 0.5666666666666667, 0.36666666666666664, 0.2, 0.0],
    "ap_p": [1.0, 0.8333333333333333, 0.8333333333333333, 0.8333333333333333, 0.8333333333333333,
             0.5555555555555556, 0.3333333333333333, 0.0, 0.0],
}
REFERENCE_CASE_B = {
    "ap_r": [0.875, 0.625, 0.625, 0.625, 0.625, 0.4166666666666667, 0.4166666666666667,
             0.16666666666666666, 0.125],
    "ap_p": [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666,
             0.6666666666666666, 0.375, 0.2222222222222222, 0.08333333333333333, 0.0],
}


@pytest.mark.parametrize("case, expected", [(reference_case_a, REFERENCE_CASE_A),
                                            (reference_case_b, REFERENCE_CASE_B)])
def test_equals_the_reference_code(case, expected):
    part, person = _score(case())
    assert part["ap_per_threshold"] == pytest.approx(expected["ap_r"], abs=1e-12)
    assert person["ap_per_threshold"] == pytest.approx(expected["ap_p"], abs=1e-12)


def test_a_single_threshold_gives_that_column_of_the_default_ones():
    """Each threshold is scored on its own: asking for 0.5 alone gives the 0.5 column."""
    images = reference_case_a()
    full = PartInstanceAP(CLASSES)
    single = PartInstanceAP(CLASSES, thresholds=(0.5,))
    for image in images:
        full.update(*image)
        single.update(*image)
    assert single.result()["ap_per_threshold"][0] == full.result()["ap_per_threshold"][IOU_THRESHOLDS.index(0.5)]


def test_labels_outside_the_classes_are_an_error_naming_the_image():
    persons, parsing = _two_people()
    for metric in (PartInstanceAP(CLASSES), PersonAP(len(CLASSES))):
        with pytest.raises(ValueError, match="crowd3: parsing labels outside 0..19"):
            metric.update(persons, [0.9, 0.8], parsing + 20, persons, parsing, name="crowd3")
