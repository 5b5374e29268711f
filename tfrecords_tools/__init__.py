"""Dataset converters: LIP (+ COCO DensePose), ATR, CIHP and synthetic people -> TFRecords."""
