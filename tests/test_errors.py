"""SettingError: settings named in the template, values filled once (braces in values stay)."""

import pytest

from spd_tf.errors import SettingFileNotFoundError, SettingValueError


def test_settings_are_worded_by_the_front_end_and_values_are_left_alone():
    error = SettingFileNotFoundError("{DataConfig.train_patterns} {pattern!r} matches no files; see {other}",
                                     pattern="runs/{a.b}/*.tfrecord")
    assert isinstance(error, FileNotFoundError)
    assert str(error) == "DataConfig.train_patterns 'runs/{a.b}/*.tfrecord' matches no files; see other"
    assert error.settings == ("DataConfig.train_patterns", "other")
    assert error.worded({"DataConfig.train_patterns": "--data"}) == (
        "--data 'runs/{a.b}/*.tfrecord' matches no files; see other")


def test_value_errors_keep_format_specs():
    with pytest.raises(ValueError, match=r"^rate=0.50 is too low$"):
        raise SettingValueError("{rate}={value:.2f} is too low", value=0.5)
