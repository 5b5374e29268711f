"""What the TensorFlow-free deployment path costs: import time and install size.

    python bench/deploy_footprint.py [--venv CLIENT_VENV ...] [--repeats 7]

Prints JSON lines:
  {"bench": "import", "what": ..., "median_s": ...}  the deployment modules imported in a fresh
      Python where `import tensorflow` raises (spd_tf.deploy, spd-predict's and spd-client's
      modules, artifacts), beside `import tensorflow` itself, interleaved, median of --repeats;
  {"bench": "install", "venv": ..., "total_mb": ..., "largest": {...}}  the site-packages size
      of each --venv (e.g. one made with `pip install "spd_tf[client]"`), by distribution.
Every line names the CPU (spd_tf.cpu). Run it from the repository root.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spd_tf import cpu  # noqa: E402

BLOCK = """
import importlib.abc, sys
class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(name)
sys.meta_path.insert(0, _NoTensorFlow())
"""
TIMED = """
import time
start = time.perf_counter()
{imports}
print(time.perf_counter() - start)
"""
CASES = {
    "spd_tf.deploy without TensorFlow": (BLOCK, "import spd_tf.deploy"),
    "spd-predict + spd-client + artifacts without TensorFlow": (
        BLOCK, "import spd_tf.deploy.predict, spd_tf.deploy.client, spd_tf.artifacts"),
    "import tensorflow (for scale)": ("", "import tensorflow"),
}
SIZES = """
import json, importlib.metadata as md, os
sizes = {}
for dist in md.distributions():
    total = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    sizes[dist.metadata["Name"]] = total
print(json.dumps(sizes))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", action="append", default=[], help="a virtualenv whose install size to report")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    machine = {"cpu": cpu.summary()}
    times = {name: [] for name in CASES}
    for _ in range(args.repeats):  # interleaved: a busy moment hits every case alike
        for name, (prelude, imports) in CASES.items():
            code = prelude + TIMED.format(imports=imports)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times[name].append(float(done.stdout.strip().splitlines()[-1]))
    for name, values in times.items():
        print(json.dumps({"bench": "import", "what": name, "median_s": round(statistics.median(values), 4),
                          "repeats": args.repeats, **machine}))
    for venv in args.venv:
        python = Path(venv) / "bin" / "python"
        sizes = json.loads(subprocess.run([str(python), "-c", SIZES], capture_output=True, text=True,
                                          check=True).stdout)
        largest = dict(sorted(((k, round(v / 2**20, 1)) for k, v in sizes.items()), key=lambda kv: -kv[1])[:6])
        print(json.dumps({"bench": "install", "venv": venv, "total_mb": round(sum(sizes.values()) / 2**20, 1),
                          "distributions": len(sizes), "largest": largest, **machine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
