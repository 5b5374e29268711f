"""Deployment stage: saved_model (TF Serving SavedModel), export_tflite and export_onnx (with
model_frame, the graph both portable formats hold), runtimes (LiteRT / onnxruntime),
client (spd-client), predict (spd-predict), package (a run into spd_tf/pretrained) and cli
(spd-export). Importing this package, runtimes, client or predict needs no TensorFlow."""
