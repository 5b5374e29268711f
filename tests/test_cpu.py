"""CPU description and the precision `auto` picks from it."""

import pytest
import tensorflow as tf

from spd_tf import cpu
from spd_tf.errors import SettingValueError
from spd_tf.training import precision

ZEN5 = ("processor\t: 0\nmodel name\t: AMD EPYC 9R45\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: other\n")
ZEN3 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"


@pytest.fixture
def cpuinfo(tmp_path):
    def write(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        cpu.describe.cache_clear()
        return str(path)
    yield write
    cpu.describe.cache_clear()


def test_describe_reads_the_first_processor(cpuinfo):
    info = cpu.describe(cpuinfo(ZEN5))
    assert info["model"] == "AMD EPYC 9R45"
    assert info["flags"] == ["avx2", "fma", "avx512f", "avx512_bf16"]
    assert cpu.has_native_bf16(cpuinfo(ZEN5))
    assert not cpu.has_native_bf16(cpuinfo(ZEN3))
    assert cpu.summary(cpuinfo(ZEN3)).startswith("AMD EPYC 7B13, ")


def test_missing_cpuinfo_still_names_something(tmp_path):
    info = cpu.describe(str(tmp_path / "absent"))
    assert info["model"] and info["flags"] == []


@pytest.mark.parametrize("native, policy", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_trains_in_bfloat16_only_where_the_cpu_has_it(monkeypatch, native, policy):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("auto is mixed_float16 on a GPU")
    monkeypatch.setattr(cpu, "has_native_bf16", lambda: native)
    assert precision.resolve_policy("auto") == policy
    assert precision.resolve_policy("float32") == "float32"
    with pytest.raises(SettingValueError, match="'int8'"):
        precision.resolve_policy("int8")
