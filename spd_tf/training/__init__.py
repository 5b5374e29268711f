"""Training: strategy and precision selection, the custom training loop, run directories.

`train.py` is a thin CLI over `spd_tf.training.cli.main`; the loop itself lives in
`trainer.Trainer` so tests and other tools drive exactly the code path users run.
"""
