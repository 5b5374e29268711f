"""The flat layout's module paths still import for one release, each with a DeprecationWarning
naming where it moved (spd_tf/_moved.py)."""

import importlib
import sys

import pytest

from spd_tf import _moved


@pytest.mark.parametrize("old, new", sorted(_moved.MOVED.items()))
def test_an_old_module_path_gives_the_new_modules_names(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    name = next(name for name in vars(importlib.import_module(new)) if not name.startswith("_"))
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}.{name}"):
        assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_former_modules_that_became_packages_forward_their_names():
    from spd_tf.evaluation import evaluator
    from spd_tf.losses import multitask
    from spd_tf.model import restore

    with pytest.warns(DeprecationWarning, match="spd_tf.evaluation.evaluate moved to spd_tf.evaluation.evaluator"):
        import spd_tf.evaluation

        assert spd_tf.evaluation.evaluate is evaluator.evaluate
    with pytest.warns(DeprecationWarning, match="spd_tf.losses.compute_losses moved"):
        import spd_tf.losses

        assert spd_tf.losses.compute_losses is multitask.compute_losses
    with pytest.warns(DeprecationWarning, match="spd_tf.artifacts.restore_run_model moved to spd_tf.model.restore"):
        from spd_tf import artifacts

        assert artifacts.restore_run_model is restore.restore_run_model


def test_an_unknown_name_is_still_an_attribute_error():
    from spd_tf import artifacts, inference

    with pytest.raises(AttributeError):
        artifacts.no_such_name
    with pytest.raises(AttributeError, match="no_such_name"):
        inference.no_such_name
