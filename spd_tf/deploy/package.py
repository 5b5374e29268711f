"""Packs a trained run into a shipped model folder: `python -m spd_tf.deploy.package`.

    python -m spd_tf.deploy.package RUN_DIR --name ccp-small \
        --val-metrics RUN/../val/metrics.json --reference-image CCP/photos/0001.jpg

Writes (atomically, into spd_tf/pretrained/<folder>/ unless --out is given; an existing
package is replaced only with --overwrite):
  config.json        the run's config.json plus a "package" block (source, steps, time, CPU,
                     commit, the val figures and the reference prediction's file names)
  model.weights.h5   the model's weights at float32 (the run's EMA weights when it kept them)
  reference.png      spd-predict's class map of --reference-image, which the tests compare
                     with a fresh prediction (the photo itself is not copied); for a pose model
                     also reference_keypoints.json, its joints
  MODEL_CARD.md      data and licence, classes, val IoU per class (and PCKh per joint for a pose
                     model), failure cases, how to reproduce
"""

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from spd_tf import artifacts, cli_args, inference, layout, pretrained
from spd_tf.tasks.pose import keypoints_json
from spd_tf.fileio import atomic_path, write_bytes_atomic, write_json_atomic

REFERENCE_NAME = "reference.png"
REFERENCE_KEYPOINTS_NAME = "reference_keypoints.json"  # pose models: the joints of the same photo
CARD_NAME = "MODEL_CARD.md"
WEAK_IOU = 0.10  # classes under this val IoU are listed as failure cases


def source_commit(repo: Path) -> str:
    """The commit of the checkout the package is made from ("unknown" outside git)."""
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def reference_prediction(loaded: artifacts.Loaded, image_path: Path) -> dict:
    """What spd-predict writes for one photo (its one-scale bytes path, decoded in the graph),
    at the photo's size: the class map and, for a pose model, the joints; what the tests re-predict."""
    try:
        data = Path(image_path).read_bytes()
    except OSError as error:
        raise ValueError(f"{image_path}: cannot read the reference image ({error.strerror})") from None
    return inference.split_batch(loaded.bytes_runner()([data]))[0]


def val_block(metrics_path: Path) -> dict:
    """The val figures of an evaluate.py metrics.json: protocol-level means, IoU per class and,
    for a pose model on a dataset with joints, PCKh per joint and in the mean."""
    try:
        metrics = json.loads(Path(metrics_path).read_text())
        parsing = metrics["parsing"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{metrics_path}: not an evaluate.py metrics.json with parsing results ({error})") from None
    block = {
        "dataset": metrics.get("dataset"), "num_examples": metrics.get("num_examples"),
        "mean_iou": parsing["mean_iou"], "pixel_accuracy": parsing["pixel_accuracy"],
        "frequency_weighted_iou": parsing["frequency_weighted_iou"],
        "foreground_iou": parsing.get("foreground_iou"),
        "iou": {name: scores["iou"] for name, scores in parsing["per_class"].items()},
        "weakest_classes": parsing.get("weakest_classes"),
    }
    pose = metrics.get("pose", {})
    if "pckh" in pose:
        block["pckh"] = pose["pckh"]["Avg"] / 100.0
        block["pckh_per_joint"] = {name: value / 100.0 for name, value in pose["pckh_per_joint"].items()}
    return block


# The training data of a package and what its licence makes of the weights (--data).
DATA_CARDS = {
    "ccp": (
        "- CCP, Yang et al., \"Clothing Co-Parsing by Joint Image Segmentation and Labeling\" (CVPR 2014),\n"
        "  https://github.com/bearpaw/clothing-co-parsing, Apache-2.0. Trained on the 804 photos of the\n"
        "  train list, settings chosen on the 100 val photos only; CCP's 59 tags are mapped to 15 classes\n"
        "  (spd_tf/data/ccp.py). The weights are distributed under the same Apache-2.0 licence."),
    "ccp+fashionista": (
        "- CCP, Yang et al., \"Clothing Co-Parsing by Joint Image Segmentation and Labeling\" (CVPR 2014),\n"
        "  https://github.com/bearpaw/clothing-co-parsing, Apache-2.0: the 804 train photos (pixel labels, no\n"
        "  joints).\n"
        "- Fashionista v0.2, Yamaguchi et al., \"Parsing Clothing in Fashion Photographs\" (CVPR 2012),\n"
        "  for research use (the copy used: github.com/bobbens/clothes_parsing, CC BY-NC-SA 4.0): the 490\n"
        "  train photos (superpixel labels of the same 59 tags, and 14 body joints).\n"
        "- Settings chosen on the two val splits only (CCP 100, Fashionista 97 photos); both datasets'\n"
        "  59 tags are mapped to the 15 `ccp` classes (spd_tf/data/ccp.py, spd_tf/data/fashionista.py).\n"
        "- **Licence of the weights: for research use only (non-commercial)**, because Fashionista is;\n"
        "  a model trained on CCP alone (`ccp-small`) is Apache-2.0."),
}


def _val_section(val: dict) -> str:
    rows = "\n".join(f"| {cls} | {100 * iou:.1f} |" for cls, iou in val["iou"].items())
    foreground = f", person-foreground IoU {100 * val['foreground_iou']:.2f} %" if val.get("foreground_iou") else ""
    text = f"""## {str(val['dataset']).upper() if val['dataset'] == 'ccp' else str(val['dataset']).title()} val ({val['num_examples']} photos, paper protocol: scales 1/0.75/1.25 x flip)
mIoU {100 * val['mean_iou']:.2f} %, pixel accuracy {100 * val['pixel_accuracy']:.2f} %, fwIoU
{100 * val['frequency_weighted_iou']:.2f} %{foreground}.

| class | IoU % |
|---|---|
{rows}
"""
    if "pckh" in val:
        joints = "\n".join(f"| {name} | {100 * value:.1f} |" for name, value in val["pckh_per_joint"].items())
        text += f"""
PCKh@0.5 {100 * val['pckh']:.2f} % (head size = neck to head).

| joint | PCKh@0.5 % |
|---|---|
{joints}
"""
    return text


def model_card(name: str, config: dict, block: dict) -> str:
    """MODEL_CARD.md text, every figure taken from the package's own config block."""
    model, train, run = config["model"], config["train"], config.get("run", {})
    vals = block.get("vals") or [block["val"]]
    cpu = run.get("cpu", {})
    weak = sorted({cls for val in vals for cls, iou in val["iou"].items() if iou < WEAK_IOU})
    size = "x".join(str(v) for v in model["input_size"])
    pose = "p" in model["variant"]
    keypoint_set = (model.get("keypoint_set") or {}).get("name", "lip")
    what = ("A small clothing parser and body-joint detector" if pose else "A small human parser")
    tasks = "segmentation and pose" if pose else "segmentation only"
    joints = (f" and finds the {len(model['keypoint_set']['joints'])} body joints of the `{keypoint_set}` keypoint set"
              if pose else "")
    start = f"from `{train['init_from']}`" if train.get("init_from") else "from random weights"
    sections = "\n".join(_val_section(val) for val in vals)
    return f"""# {name}

{what} trained by spd_tf's own `train.py` {start} on a CPU. It labels each pixel of a photo of one
person with one of {len(vals[0]['iou'])} classes{joints}. Load it by name:
`spd-predict photo.jpg --model {name} --out DIR`, `artifacts.load("{name}")`, `spd-evaluate --model {name}`,
`spd-export --model {name} --out DIR`, `train.py --init-from {name}` (docs/pretrained.md).

## Model
- variant `{model['variant']}` ({tasks}), backbone {model['backbone']} x{model['width_multiplier']},
  output stride {model['output_stride']}, input {size} (height x width), ASPP rates
  {model.get('aspp_rates')}, {model.get('num_refinement_stages')} refinement stages
- weights: float32, exponential moving average (decay {train.get('ema_decay')}) of the trained weights

## Data and licence
{DATA_CARDS[block.get('data', 'ccp')]}

## Training
- {block['steps']} steps of batch {train['batch_size']}, {train['optimizer']} lr {train['learning_rate']},
  {block['train_minutes']:.0f} min of training on {cpu.get('model', '?')} ({cpu.get('cores', '?')} cores,
  flags {' '.join(cpu.get('flags', [])) or 'none'}), precision {run.get('precision_policy', '?')}
- spd_tf commit {block['commit']}; packaged {block['created']}

{sections}
## Known failure cases
- Classes under {100 * WEAK_IOU:.0f} % val IoU, i.e. effectively not recognised: {', '.join(weak) or 'none'}
  (rare in the train photos, and small at {size}).
- Trained on full-body, single-person street-fashion photos: crops, several people, unusual
  poses and non-fashion scenes are out of distribution. The input is stretched to {size}, so
  fine detail (gloves, sunglasses, socks) is lost on large photos.
- Not trained from ImageNet weights (none could be downloaded where it was made): a model
  fine-tuned from ImageNet with the same recipe (`--backbone-weights imagenet`) should be better.

## Reproduce
```
{block['reproduce']}
```
"""


def package(run_dir: Path, name: str, val_metrics, reference_image: Path, reproduce: str,
            out: Optional[Path] = None, overwrite: bool = False, data: str = "ccp") -> Path:
    """Writes the package (module docstring); returns its folder. `val_metrics`: one metrics.json
    or several (one per val split, the first is the headline); `data`: a key of DATA_CARDS."""
    if data not in DATA_CARDS:
        raise ValueError(f"data {data!r} is not one of {tuple(DATA_CARDS)}")
    paths = [val_metrics] if isinstance(val_metrics, (str, Path)) else list(val_metrics)
    run_dir = Path(run_dir)
    config = layout.read_run_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_dir}: no {layout.CONFIG_NAME} (not a train.py run directory)")
    final = Path(out) if out is not None else pretrained.PACKAGE_ROOT / pretrained.folder_name(name)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists; pass --overwrite to replace it")
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    training = metrics.get("training", {})
    loaded = artifacts.load(run_dir)
    block = {
        "name": name, "source_run": str(run_dir.resolve()), "commit": source_commit(Path(__file__).parent),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "steps": training.get("steps"), "train_minutes": training.get("train_seconds", 0.0) / 60.0,
        "val": val_block(paths[0]), "vals": [val_block(path) for path in paths], "data": data,
        "reproduce": reproduce,
        "reference": {"image": Path(reference_image).name, "prediction": REFERENCE_NAME,
                      "protocol": "spd-predict (one scale)"},
    }
    with atomic_path(final, directory=True) as temp:
        loaded.model.save_weights(temp / layout.WEIGHTS_NAME)
        write_json_atomic(temp / layout.CONFIG_NAME, {**config, "package": block})
        reference = reference_prediction(loaded, Path(reference_image))
        ok, png = cv2.imencode(".png", reference["labels"].astype(np.uint8))
        if not ok:
            raise RuntimeError(f"{reference_image}: OpenCV failed to encode the reference prediction")
        write_bytes_atomic(temp / REFERENCE_NAME, png.tobytes())
        if "keypoints" in reference:
            write_json_atomic(temp / REFERENCE_KEYPOINTS_NAME,
                              keypoints_json(reference["keypoints"], reference["labels"].shape, loaded.keypoint_set))
        (temp / CARD_NAME).write_text(model_card(name, config, block))
    return final


def main(argv=None) -> int:
    parser = cli_args.Parser(prog="python -m spd_tf.deploy.package", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the train.py run directory to pack")
    parser.add_argument("--name", required=True, help="the model's name (ccp-small)")
    parser.add_argument("--val-metrics", type=Path, required=True, nargs="+",
                        help="evaluate.py metrics.json of each val split (the first is the headline)")
    parser.add_argument("--data", default="ccp", choices=sorted(DATA_CARDS),
                        help="the training data, for the model card's data and licence section")
    parser.add_argument("--reference-image", type=Path, required=True,
                        help="a val photo whose prediction is stored for the tests")
    parser.add_argument("--reproduce", default="", help="the commands that trained the run (for the model card)")
    cli_args.add_out(parser, default=None, help="package folder (default: spd_tf/pretrained/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package")
    args = parser.parse_args(argv)
    try:
        path = package(args.run_dir, args.name, args.val_metrics, args.reference_image, args.reproduce,
                       args.out, args.overwrite, args.data)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in path.iterdir()) / 1e6
    print(f"packaged {args.name} in {path} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
