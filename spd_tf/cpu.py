"""What CPU this is: its model name and the vector extensions that decide kernel speed.

Every benchmark and every run's metrics.json names the CPU (the machines this project runs
on change between AVX2-only and AVX-512 + bf16 parts, ~3x apart), and `--precision auto`
trains in bfloat16 only where the CPU computes it natively (emulated bf16 is slower than
float32: 48 s against 1.9 s a step on an AVX2 machine).
"""

import functools
import os
import platform
from typing import Dict

CPUINFO = "/proc/cpuinfo"
# Flags that change which oneDNN kernels run (Linux /proc/cpuinfo spelling).
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _read_cpuinfo(path: str) -> Dict[str, str]:
    """The first processor's `key: value` lines (all processors of these machines are alike)."""
    fields = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


@functools.lru_cache(maxsize=None)
def describe(path: str = CPUINFO) -> dict:
    """{"model": name, "cores": n, "flags": [the VECTOR_FLAGS present]} (model from platform elsewhere)."""
    fields = _read_cpuinfo(path)
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "flags": [flag for flag in VECTOR_FLAGS if flag in flags],
    }


def has_native_bf16(path: str = CPUINFO) -> bool:
    return any(flag in describe(path)["flags"] for flag in NATIVE_BF16_FLAGS)


def summary(path: str = CPUINFO) -> str:
    """One line for logs and README figures, e.g. `AMD EPYC, 2 cores, avx2 fma avx512f avx512_bf16`."""
    info = describe(path)
    return f"{info['model']}, {info['cores']} cores, {' '.join(info['flags']) or 'no AVX2'}"
