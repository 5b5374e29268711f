"""The custom training loop: one tf.function step under `strategy.run`, checkpoint/resume,
presence-masked multi-task losses, TensorBoard, progress bar, clean stop on Ctrl-C.

A custom loop (rather than Model.fit) keeps the per-task losses, the replica reduction and
the resume position explicit: every replica computes `compute_losses` on its slice, which
divides by the GLOBAL batch size, the optimizer all-reduces (sums) the gradients and the
reported losses are summed over replicas, so one step equals one step on the global batch.
"""

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from spd_tf.config import DENSEPOSE, DataConfig, ModelConfig, TrainConfig
from spd_tf.data.pipeline import build_dataset
from spd_tf.layout import SUMMARY_DIR
from spd_tf.losses.multitask import compute_losses
from spd_tf.model.multiscale import multiscale_outputs
from spd_tf.model.spd import build_model
from spd_tf.progress import Progress
from spd_tf.training import precision as precision_lib
from spd_tf.training.budget import TimeBudget
from spd_tf.training.checkpoints import TrainingCheckpoint, checkpoint_directory
from spd_tf.training.errors import (
    SetupSettingError,
    TrainingDataError,
    TrainingDiverged,
)
from spd_tf.training.optimizer import build_optimizer
from spd_tf.training.signals import StopRequest
from spd_tf.training.strategy import is_chief, task_identity
from spd_tf.training.summaries import TrainingSummaries
from spd_tf.training.visual_summaries import contact_sheets

PREVIEW_EXAMPLES = 3


@tf.function
def _all_finite(variables) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])


@dataclasses.dataclass
class TrainResult:
    step: int
    finished: bool  # reached total_steps or the time budget (False when stopped by a signal)
    already_finished: bool  # nothing to do: the run had finished before
    last_losses: Dict[str, float]
    seconds: float
    signal: int = 0  # the signal that stopped the run early (0: none)
    budget_reached: bool = False  # stopped by TrainConfig.max_minutes


def backbone_weights_arg(value: str) -> Optional[str]:
    """`none` -> None for build_model; `imagenet` and paths pass through."""
    return None if value == "none" else value


class Trainer:
    """Builds model, optimizer and checkpoint in the strategy's scope and runs the loop."""

    def __init__(
        self,
        model_config: ModelConfig,
        data_config: DataConfig,
        train_config: TrainConfig,
        run_dir: Path,
        strategy: tf.distribute.Strategy,
        policy: str = "float32",
        xla: bool = False,
        log: Callable[[str], None] = print,
        skip_corrupt_records: bool = False,
    ):
        if xla and model_config.has(DENSEPOSE):
            raise SetupSettingError(
                "{RunOptions.xla} cannot compile variant {variant!r}: tf.image.crop_and_resize (DensePose ROI) "
                "has no XLA kernel; drop {RunOptions.xla} or use variant s/sp", variant=model_config.variant)
        self.model_config = model_config
        self.data_config = data_config
        self.train_config = train_config
        self.run_dir = Path(run_dir)
        self.strategy = strategy
        self.policy = policy
        self.xla = xla
        self.log = log
        self.skip_corrupt_records = skip_corrupt_records
        self.chief = is_chief(strategy)
        self.replicas = strategy.num_replicas_in_sync
        if train_config.batch_size % self.replicas:
            raise SetupSettingError(
                "{TrainConfig.batch_size} {batch} (global) is not divisible by the {replicas} replicas of the "
                "{strategy}", batch=train_config.batch_size, replicas=self.replicas, strategy=type(strategy).__name__)
        precision_lib.apply_policy(policy)
        keras.utils.set_random_seed(train_config.seed)
        with strategy.scope():
            self.model = build_model(model_config, backbone_weights_arg(train_config.backbone_weights))
            self.planned_steps = tf.Variable(train_config.total_steps, dtype=tf.int64, trainable=False,
                                             name="planned_steps")
            self.optimizer = precision_lib.wrap_optimizer(build_optimizer(train_config, self.planned_steps), policy)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
        _, worker_id = task_identity(strategy)
        self.checkpoint = TrainingCheckpoint(
            checkpoint_directory(self.run_dir, self.chief, worker_id), self.model, self.optimizer, self.step,
            schedule={"planned_steps": self.planned_steps, "train_seconds": self.train_seconds},
        )
        self.summaries = TrainingSummaries(self.run_dir / SUMMARY_DIR if self.chief else None)
        self._preview_images = None

    # --- resume -----------------------------------------------------------------------
    def restore(self) -> int:
        """Restores the latest checkpoint (if any), else starts from TrainConfig.init_from (if
        given); returns the step to continue from."""
        restored = self.checkpoint.restore_latest(self.log)
        if restored:
            self.log(f"resumed from {restored} at step {int(self.step.numpy())}")
        elif self.train_config.init_from:
            from spd_tf.training.init_from import initialise_from

            initialise_from(self.model, self.model_config, self.train_config.init_from, self.log)
        return int(self.step.numpy())

    @property
    def learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    # --- data -------------------------------------------------------------------------
    def _train_dataset(self, start_step: int) -> tf.data.Dataset:
        dataset = build_dataset(
            list(self.data_config.train_patterns),
            self.model_config,
            self.data_config,
            training=True,
            batch_size=self.train_config.batch_size,
            skip_corrupt=self.skip_corrupt_records,
        )
        # The pipeline is a deterministic function of the seed, so skipping the batches
        # already consumed puts a resumed run exactly where the interrupted one stopped.
        return dataset.repeat().skip(start_step)

    # --- the step ---------------------------------------------------------------------
    def _replica_step(self, features, labels):
        with tf.GradientTape() as tape:
            outputs = multiscale_outputs(
                self.model, features, self.train_config.train_scales, training=True
            )
            losses = compute_losses(outputs, labels, self.model_config, self.train_config)
            loss = losses["total"]  # already divided by the global batch size
            if precision_lib.needs_loss_scaling(self.policy):
                loss = self.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return losses

    def _make_train_step(self):
        replica_step = tf.function(self._replica_step, jit_compile=True) if self.xla else self._replica_step

        @tf.function
        def train_step(iterator):
            features, labels = next(iterator)
            per_replica = self.strategy.run(replica_step, args=(features, labels))
            self.step.assign_add(1)
            return {
                name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()
            }

        return train_step

    # --- the loop ---------------------------------------------------------------------
    def train(self, on_step: Optional[Callable[[int, Dict[str, float]], None]] = None) -> TrainResult:
        """Trains from the restored step to total_steps or the time budget; stops cleanly on SIGINT/SIGTERM.

        `on_step(step, losses)` is called after every step (e.g. to watch or interrupt a run).
        """
        started = time.time()
        total = self.train_config.total_steps
        start = self.restore()
        budget = TimeBudget(self.train_config.max_minutes, total, float(self.train_seconds.numpy()))
        if start >= total or budget.exhausted:
            self.log(f"run {self.run_dir} already finished ({start}/{total} steps, {budget.seconds / 60:.1f} "
                     "minutes); not retraining")
            return TrainResult(start, True, True, {}, 0.0)
        dataset = self._train_dataset(start)
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        train_step = self._make_train_step()
        bar = Progress(total, "train", "step", initial=start, enabled=self.chief)
        stop = StopRequest()
        values: Dict[str, float] = {}
        step = start
        with stop.installed():
            while step < total:
                try:
                    losses = train_step(iterator)
                except tf.errors.DataLossError:
                    raise self._damaged_data(step) from None
                step = int(self.step.numpy())
                self.planned_steps.assign(budget.planned_steps(step, start))
                self.train_seconds.assign(budget.seconds)
                values = {name: float(value) for name, value in losses.items()}
                if not math.isfinite(values["total"]):
                    raise self._diverged(f"loss became {values['total']}", step)
                bar.set_total(int(self.planned_steps.numpy()))  # under --max-minutes: the steps it will reach
                bar.set_postfix({f"loss_{k}": v for k, v in values.items()})
                bar.update(1)
                checkpoint_due = step % self.train_config.checkpoint_every == 0 and step < total
                if checkpoint_due or self._log_due(step):
                    self._check_weights(step)  # before any summary draws with them
                self._log_step(step, values)
                if checkpoint_due:
                    self.checkpoint.save(step)
                if on_step is not None:
                    on_step(step, values)
                if stop.requested or budget.exhausted:
                    break
        bar.close()
        finished = step >= total or budget.exhausted
        if finished and self.train_config.ema_decay:
            self._use_weight_average()
        self._check_weights(step)
        self.train_seconds.assign(budget.seconds)
        self.checkpoint.save(step)
        self.summaries.flush()
        if budget.exhausted:
            self.log(f"time budget of {self.train_config.max_minutes:g} minutes used at step {step}")
        elif step < total:
            self.log(
                f"stopped by {stop.signal_name} at step {step}/{total}; checkpoint saved to "
                f"{self.checkpoint.latest}; re-run the same command to continue"
            )
        return TrainResult(step, finished, False, values, time.time() - started, stop.signal_number,
                           budget_reached=budget.exhausted)

    def _use_weight_average(self, batches: int = 16) -> None:
        """Swaps in the weights' moving average and re-estimates BN statistics for it (as SCHP
        does after averaging): the running statistics were gathered with the live weights.
        Each batch is averaged in with equal weight (momentum i/(i+1)), eagerly, in training mode."""
        self.optimizer.finalize_variable_values(self.model.trainable_variables)
        norms = [layer for layer in self.model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
                 and layer.trainable]
        if not norms:
            return
        momenta = [layer.momentum for layer in norms]
        iterator = iter(self._train_dataset(0))
        for index in range(batches):
            features, _ = next(iterator)
            for layer in norms:
                layer.momentum = index / (index + 1.0)
            multiscale_outputs(self.model, features, self.train_config.train_scales, training=True)
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        self.log(f"weights: moving average (decay {self.train_config.ema_decay:g}); BN statistics re-estimated "
                 f"on {batches} training batches")

    def _diverged(self, what: str, step: int) -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} at step {step}; stopped without saving, the last good checkpoint is "
            f"{self.checkpoint.latest or 'none (no checkpoint yet)'}"
        )

    def _check_weights(self, step: int) -> None:
        """Every model weight finite (BN moving statistics included), else TrainingDiverged:
        a finite loss does not prove it (training-mode BN never reads its moving variance)."""
        weights = [w for w in self.model.weights if "float" in str(w.dtype)]
        if bool(_all_finite([w.value for w in weights])):
            return
        bad = [w.path for w in weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
        raise self._diverged(f"{len(bad)} weight(s) became non-finite (e.g. {bad[0]})", step)

    def _damaged_data(self, step: int) -> TrainingDataError:
        """A shard turned out damaged mid-run: keep the steps done, say which shard it is."""
        from spd_tf.data.pipeline import first_damage, list_files
        from spd_tf.training.data_checks import SKIP_HINT

        self._check_weights(step)
        self.checkpoint.save(step)
        damage = first_damage(list_files(list(self.data_config.train_patterns)))
        return TrainingDataError("{damage}; checkpoint saved at step {step} ({latest}); " + SKIP_HINT,
                                 damage=damage, step=step, latest=self.checkpoint.latest)

    def _log_due(self, step: int) -> bool:
        return step % self.train_config.log_every == 0 or step == self.train_config.total_steps

    def _log_step(self, step: int, values: Dict[str, float]) -> None:
        config = self.train_config
        if not self._log_due(step):
            return
        scalars = {f"loss/{name}": value for name, value in values.items()}
        scalars["learning_rate"] = self.learning_rate
        self.summaries.scalars(step, scalars)
        if self.chief and (step % config.checkpoint_every == 0 or step == config.total_steps):
            self._image_summaries(step)

    def _image_summaries(self, step: int) -> None:
        """input | parsing | pose | DensePose sheets of a few fixed examples, as training goes."""
        if self._preview_images is None:
            features, _ = next(iter(build_dataset(
                list(self.data_config.val_patterns or self.data_config.train_patterns),
                self.model_config, self.data_config, training=False, batch_size=PREVIEW_EXAMPLES,
            )))
            self._preview_images = np.clip(features["image"].numpy(), 0, 255).astype(np.uint8)
        sheets = contact_sheets(self.model, self.model_config, self._preview_images)
        self.summaries.images(step, {"predictions": np.stack(sheets)})
