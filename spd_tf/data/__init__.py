"""TFRecord schema, synthetic people and the tf.data input pipeline."""
