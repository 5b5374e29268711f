"""Per-image parsing-loss options beside plain cross-entropy: OHEM, class balance, Lovász-softmax.

Selected by `TrainConfig` (`ohem_threshold` / `ohem_min_kept`, `class_weighting`,
`segmentation_loss` / `lovasz_weight`; docs/structure_loss.md). Every term is computed per
image and never pools pixels across the batch, so one example's loss does not depend on the
others in its replica's slice: the presence masks and the global-batch division of
`spd_tf.losses.multitask` stay exact under tf.distribute. Inputs are float32 logits already at the
label resolution, int32 labels and the mask of valid pixels (labelled, not 255, task present).

- OHEM follows mmsegmentation's `OHEMPixelSampler.sample`
  (mmseg/structures/sampler/ohem_pixel_sampler.py) and HRNet-Semantic-Segmentation's
  `OhemCrossEntropy` (lib/core/criterion.py:29-58): sort the valid pixels by the softmax
  probability of their ground-truth class, threshold = max(probability at rank min_kept,
  thresh), keep the pixels strictly below it, CE averaged over the kept pixels (HRNet's
  `pixel_losses.mean()`, line 58). min_kept is a fraction of the image's valid pixels here
  (mmseg: 100 000 pixels per image of its 512x1024 crops, about 0.2), so one setting means
  the same at every input size.
- Class balance: each pixel's CE is weighted by 1 / sqrt(pixel count of its class in its
  image), normalised by the weights' sum (PyTorch's weighted-CE mean). Per image rather
  than per batch (SCHP's unused `_generate_weights`, utils/criterion.py:109-127, uses the
  batch), for the replica independence above; inverse-sqrt rather than inverse frequency
  so a ten-pixel glove does not outweigh the whole person.
- Lovász-softmax: Berman et al.'s algorithm as SCHP ships it (utils/lovasz_softmax.py:
  `lovasz_grad` 29-41, `lovasz_softmax_flat` 183-214 with classes='present', softmax of the
  logits upsampled to the labels as `LovaszSoftmax.forward` 277-279) and adds it to CE as
  SCHP's criterion does (utils/criterion.py:68-70, 0.5 x lambda each: equal weights; the
  common factor 0.5 is left to the task weight). SCHP pools each GPU's batch
  (per_image=False); this is the reference's per_image=True form, for the reason above.
"""

import tensorflow as tf

OHEM_SENTINEL = 2.0  # above every probability: invalid pixels sort last and are never kept


def target_probability(probabilities, labels):
    """Softmax probability of each pixel's label: [N, H, W, C], [N, H, W] -> [N, H, W]."""
    return tf.gather(probabilities, labels, batch_dims=3)


def ohem_mask(target_prob, valid, threshold: float, min_kept: float):
    """Pixels OHEM keeps (bool [N, H, W]): valid ones whose target probability is below
    max(threshold, the probability at rank floor(min_kept x valid count))."""
    flat = tf.reshape(tf.stop_gradient(target_prob), [tf.shape(target_prob)[0], -1])
    flat_valid = tf.reshape(valid, tf.shape(flat))
    ordered = tf.sort(tf.where(flat_valid, flat, OHEM_SENTINEL), axis=1)
    count = tf.reduce_sum(tf.cast(flat_valid, tf.int32), axis=1)
    rank = tf.cast(tf.floor(min_kept * tf.cast(count, tf.float32)), tf.int32)
    rank = tf.maximum(tf.minimum(rank, count - 1), 0)  # the reference's min(min_kept, numel - 1)
    cutoff = tf.maximum(tf.gather(ordered, rank, batch_dims=1), threshold)
    return tf.logical_and(valid, target_prob < cutoff[:, None, None])


def inverse_sqrt_frequency_weights(labels, valid, num_classes):
    """Per-pixel weight 1 / sqrt(count of its class among the image's valid pixels); 0 if invalid."""
    one_hot = tf.one_hot(tf.where(valid, labels, -1), num_classes)
    counts = tf.reduce_sum(one_hot, axis=[1, 2])
    weights = tf.math.rsqrt(tf.maximum(counts, 1.0))
    return tf.gather(weights, labels, batch_dims=1) * tf.cast(valid, tf.float32)


def lovasz_softmax(probabilities, labels, valid):
    """Per-image Lovász-softmax over the classes present in the image's valid pixels -> [N].

    Invalid pixels get error 0 and no foreground, so they sort after every pixel with an
    error and change no term that counts: the value equals dropping them (the reference)."""
    shape = tf.shape(probabilities)
    num_classes = shape[3]
    foreground = tf.one_hot(tf.where(valid, labels, -1), num_classes)
    errors = tf.where(valid[..., None], tf.abs(foreground - probabilities), 0.0)
    # [N, C, P]: one descending sort per image and class.
    errors = tf.transpose(tf.reshape(errors, [shape[0], -1, num_classes]), [0, 2, 1])
    foreground = tf.transpose(tf.reshape(foreground, [shape[0], -1, num_classes]), [0, 2, 1])
    errors_sorted, order = tf.math.top_k(errors, k=tf.shape(errors)[2])
    foreground_sorted = tf.gather(foreground, order, batch_dims=2)
    total = tf.reduce_sum(foreground_sorted, axis=2, keepdims=True)
    intersection = total - tf.cumsum(foreground_sorted, axis=2)
    union = total + tf.cumsum(1.0 - foreground_sorted, axis=2)  # >= 1 from the first pixel on
    jaccard = 1.0 - intersection / union
    gradient = tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=2)
    per_class = tf.reduce_sum(errors_sorted * tf.stop_gradient(gradient), axis=2)
    present = tf.cast(total[..., 0] > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_class * present, 1), tf.reduce_sum(present, 1))


def parsing_loss(logits, labels, valid, train_config):
    """Per-image parsing loss [N]: CE (OHEM / class-weighted as configured) averaged over its
    pixel weights, plus `lovasz_weight` x Lovász-softmax for segmentation_loss=ce_lovasz.

    logits [N, H, W, C] float32 at the label resolution, labels [N, H, W] int32 (anything
    where not valid), valid [N, H, W] bool. An image without valid pixels gives 0."""
    labels = tf.where(valid, labels, tf.zeros_like(labels))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    weights = tf.cast(valid, tf.float32)
    lovasz = train_config.segmentation_loss == "ce_lovasz"
    probabilities = tf.nn.softmax(logits) if lovasz or train_config.ohem_threshold > 0 else None
    if train_config.ohem_threshold > 0:
        kept = ohem_mask(target_probability(probabilities, labels), valid,
                         train_config.ohem_threshold, train_config.ohem_min_kept)
        weights *= tf.cast(kept, tf.float32)
    if train_config.class_weighting == "inverse_sqrt_frequency":
        weights *= inverse_sqrt_frequency_weights(labels, valid, tf.shape(logits)[3])
    loss = tf.math.divide_no_nan(tf.reduce_sum(ce * weights, [1, 2]), tf.reduce_sum(weights, [1, 2]))
    if lovasz:
        loss += train_config.lovasz_weight * lovasz_softmax(probabilities, labels, valid)
    return loss
