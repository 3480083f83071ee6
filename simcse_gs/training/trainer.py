"""SimCSETrainer: the Hugging Face Trainer with the Gumbel temperature, GS logging, STS evaluation, and their own
learning rates for the proxy and the head.

Only public extension points are overridden: ``compute_loss``, ``training_step`` (the cached loss of
``--mini_batch_size``, :mod:`.cached_loss`), ``log``, ``evaluate``, ``create_optimizer``, and ``save_model`` /
``create_model_card`` for the model card (:mod:`simcse_gs.model_card`) that every saved folder gets (plus one
callback, :class:`FiniteLossCheck`).

No host synchronisation per training step: the logged statistics are summed on the device and read at logging
time, and a non-finite loss is recorded on the device and checked only where training is about to log, evaluate,
save or stop (see :meth:`SimCSETrainer.check_finite_loss`), so the CPU can queue the next step's kernels while
the GPU still runs this one.

The temperature schedule's position is derived from the Trainer's ``global_step`` (optimizer steps), which every
checkpoint stores in ``trainer_state.json`` and ``--resume_from_checkpoint`` restores, so a resumed run continues the
schedule where it stopped: optimizer steps by default, or the examples seen as the original GS repo counted them
(``tau_schedule_unit="example"``, see :func:`examples_seen`).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import speed_metrics

from ..evaluation.sts import STSEvaluator
from ..evaluation.transfer import TransferEvaluator
from ..model.gumbel import TauSchedule
from ..model.keep import KeepStatsAccumulator
from ..sharing.hub import HubFilesCallback
from ..sharing.model_card import checkpoint_usage, metric_facts, training_facts, write_model_card
from .cached_loss import average_gradients, cached_backward

LOGGED_OUTPUTS = ("contrastive_loss", "mlm_loss", "keep_rate_loss", "distill_loss", "keep_prob", "keep_rate",
                  "keep_entropy")


def examples_seen(global_step: int, micro_step: int, accumulation_steps: int, per_device_batch_size: int) -> int:
    """Examples this process fed through the model before the current forward, the original repo's ``t``.

    The original added the micro-batch size after each training forward of each process, so under gradient
    accumulation tau moves between micro-batches and under DDP each process counts only its own examples. With
    full batches that count is ``(global_step * accumulation_steps + micro_step) * per_device_batch_size``, where
    ``micro_step`` is the index of the forward within the current optimizer step; it survives a resume, which the
    original's did not. (A short last batch of an epoch is counted as a full one: at most one batch per epoch.)
    """
    return (global_step * accumulation_steps + micro_step) * per_device_batch_size


def add_keep_histogram(callbacks: Iterable[Any], stats: KeepStatsAccumulator | None, step: int,
                       tag: str = "eval/keep_prob") -> bool:
    """Write ``stats.prob_sample`` as a tensorboard histogram through every callback with a ``tb_writer``
    (transformers' ``TensorBoardCallback``). A no-op (returns False) without such a writer or without values."""
    if stats is None or len(stats.prob_sample) == 0:
        return False
    written = False
    for callback in callbacks:
        writer = getattr(callback, "tb_writer", None)
        if writer is not None:
            writer.add_histogram(tag, stats.prob_sample.numpy(), step)
            written = True
    return written


def model_policy(model: Any) -> Any:
    """The keep policy of a (possibly wrapped) SimCSE-GS model."""
    return getattr(model, "module", model).keep_policy


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; training stops before anything is logged or saved after that step."""


class FiniteLossCheck(TrainerCallback):
    """Raises :class:`NonFiniteLossError` before a log, evaluation or checkpoint follows a NaN/inf loss.

    It runs after the Trainer's ``DefaultFlowCallback`` (added last), so the ``control`` flags say what the
    Trainer is about to do at the end of this step; only then does it read the recorded flag (one host sync).
    """

    def __init__(self, trainer: SimCSETrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self.trainer.check_finite_loss()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.check_finite_loss()

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer.check_finite_loss()


class SimCSETrainer(Trainer):
    def __init__(self, *args: Any, sts_evaluator: STSEvaluator | None = None,
                 model_card_data: dict[str, Any] | None = None,
                 transfer_evaluator: TransferEvaluator | None = None, **kwargs: Any):
        """``model_card_data``: facts about the training data for the model card (train_file, examples, ...).
        ``transfer_evaluator``: the transfer tasks at every evaluation (default with ``--eval_transfer``: SimCSE's
        seven, from the STS evaluator's data folder)."""
        # The Trainer refuses eval_strategy != "no" without an eval_dataset; our "eval dataset" is the evaluator.
        if sts_evaluator is not None and kwargs.get("eval_dataset") is None:
            kwargs["eval_dataset"] = sts_evaluator
        super().__init__(*args, **kwargs)
        self.sts_evaluator = sts_evaluator
        if transfer_evaluator is None and getattr(self.args, "eval_transfer", False) and sts_evaluator is not None:
            # built now, so missing or malformed transfer data fails before training starts
            transfer_evaluator = TransferEvaluator(sts_evaluator.task_path, batch_size=sts_evaluator.batch_size,
                                                   precision=sts_evaluator.precision)
        self.transfer_evaluator = transfer_evaluator
        cfg = self.model.config
        # the Gumbel policies and the learned prune scorer anneal tau; REINFORCE samples Bernoulli(p) and
        # hard-concrete gates have their own temperature: no tau to log
        anneals = cfg.use_gs or getattr(self.model, "uses_tau", False)
        self.tau_schedule = TauSchedule(cfg.init_tau, cfg.min_tau, cfg.tau_decay_rate) if anneals else None
        self.tau_unit = getattr(cfg, "tau_schedule_unit", "optimizer_step")
        self._log_tau = getattr(self.model, "uses_tau", model_policy(self.model).uses_tau)
        self._micro = (-1, 0)  # (global_step, training forwards already run in that optimizer step)
        # Sums of the logged values since the last log: device tensors (float64, so that the means are exactly
        # those of the per-step floats) or Python floats (tau); read once per log.
        self._sums: dict[str, Any] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        # The first non-finite training loss since the last check, kept on the loss's device: (global step, value).
        self._bad_step: torch.Tensor | None = None
        self._bad_loss: torch.Tensor | None = None
        self._step_epochs: dict[int, float] = {}
        self._gradients_checked = False  # the cached loss checks once that every process has the same gradients
        self.add_callback(FiniteLossCheck(self))
        self.model_card_data = dict(model_card_data or {})
        self.add_callback(HubFilesCallback(self))

    @property
    def current_tau(self) -> float | None:
        """The temperature of the next training forward."""
        if self.tau_schedule is None:
            return None
        step = self.state.global_step
        if self.tau_unit == "optimizer_step":
            return self.tau_schedule(step)
        micro = self._micro[1] if self._micro[0] == step else 0
        return self.tau_schedule(examples_seen(step, micro, self.args.gradient_accumulation_steps,
                                               self.args.per_device_train_batch_size))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        tau = self._start_forward(model.training)
        outputs = model(**inputs, tau=tau)
        loss = outputs.loss
        if model.training:
            self._record_outputs(outputs, tau)
        return (loss, outputs) if return_outputs else loss

    def _start_forward(self, training: bool) -> float | None:
        """The temperature of this forward; a training forward is counted within the optimizer step (the
        example-counted schedule needs it)."""
        tau = self.current_tau
        if training:
            step = self.state.global_step
            self._micro = (step, self._micro[1] + 1 if self._micro[0] == step else 1)
        return tau

    def _record_outputs(self, outputs: Any, tau: float | None) -> None:
        """The NaN check and the logged sums of one training forward (device tensors: no host sync)."""
        self._record_loss(outputs.loss)
        if self._log_tau:
            self._sums["tau"] += tau  # the temperature this forward used
            self._counts["tau"] += 1
        for key in LOGGED_OUTPUTS:
            value = outputs.get(key)
            if value is not None:
                self._sums[key] += value.detach().to(_sum_dtype(value.device))  # stays on the device
                self._counts[key] += 1

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step, or with ``--mini_batch_size`` smaller than the batch the cached loss
        (:func:`~.cached_loss.cached_backward`): the same loss and gradients, one chunk's activations at a time.

        As the Trainer's step: the loss (and so every gradient) is divided by the micro-batches of this optimizer
        step, fp16 loss scaling comes from ``accelerator.backward`` and autocast from ``accelerator.autocast``. Under
        DDP the gradients are averaged by hand (:func:`~.cached_loss.average_gradients`) on the micro-batch that the
        Trainer runs outside ``no_sync``, so once per optimizer step.
        """
        size = getattr(self.args, "mini_batch_size", None)
        if size is None or inputs["input_ids"].shape[0] <= size:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        divisor = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        tau = self._start_forward(True)
        with self.compute_loss_context_manager():
            outputs = cached_backward(self.accelerator.unwrap_model(model), inputs, size, tau,
                                      backward=self.accelerator.backward, autocast=self.accelerator.autocast,
                                      loss_divisor=divisor)
        if isinstance(model, DistributedDataParallel) and model.require_backward_grad_sync:
            average_gradients(model.module, check=not self._gradients_checked)
            self._gradients_checked = True
        self._record_outputs(outputs, tau)
        return outputs.loss / divisor

    def _record_loss(self, loss: torch.Tensor) -> None:
        """Remember the first non-finite loss on its device (no host sync); :meth:`check_finite_loss` reads it."""
        loss = loss.detach().float()
        if self._bad_step is None:
            self._bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._bad_loss = torch.zeros((), dtype=torch.float32, device=loss.device)
        first = ~torch.isfinite(loss) & (self._bad_step < 0)
        self._bad_step = torch.where(first, self.state.global_step, self._bad_step)
        self._bad_loss = torch.where(first, loss, self._bad_loss)
        self._step_epochs.setdefault(self.state.global_step, self.state.epoch or 0)

    def check_finite_loss(self) -> None:
        """Raise :class:`NonFiniteLossError` if a training loss since the last check was NaN or inf (one sync)."""
        if self._bad_step is None:
            return
        step = int(self._bad_step)
        if step < 0:
            self._step_epochs.clear()
            return
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(self.args.output_dir) if self.args.output_dir and \
            os.path.isdir(self.args.output_dir) else None
        raise NonFiniteLossError(
            f"The loss is {float(self._bad_loss)} at training step {step + 1} (after {step} optimizer steps, epoch "
            f"{self._step_epochs.get(step, 0):.3f}). Training stopped; checkpoints already written are untouched"
            + (f" (the last is {last})" if last else "")
            + ". Try a lower --learning_rate, a higher --temp, or --max_grad_norm and check the data of this "
            "step; then resume with --resume_from_checkpoint or start again."
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the means since the last training log of the GS statistics and of the temperature used."""
        if "loss" in logs:
            keys = [key for key, total in self._sums.items() if isinstance(total, torch.Tensor)]
            totals = dict(zip(keys, torch.stack([self._sums[k] for k in keys]).tolist())) if keys else {}
            for key, total in self._sums.items():
                logs[key] = round(totals.get(key, total) / self._counts[key], 6)  # one host sync per log
            self._sums.clear()
            self._counts.clear()
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """STS-B and SICK-R Spearman on the evaluator's split (metrics ``eval_stsb_spearman``, ...) and, with
        ``--eval_transfer``, the transfer tasks' validation accuracies (``eval_MR``, ..., ``eval_avg_transfer``)."""
        evaluator = eval_dataset if isinstance(eval_dataset, STSEvaluator) else self.sts_evaluator
        if evaluator is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        start = time.time()
        model = self.accelerator.unwrap_model(self.model)
        keep_sample = KeepStatsAccumulator(sample_size=20_000) if model.config.use_gs else None
        metrics = evaluator(model, keep_sample)  # keep_sample: p of the evaluated sentences' decided tokens
        add_keep_histogram(self.callback_handler.callbacks, keep_sample, self.state.global_step)  # no-op without tb
        if self.transfer_evaluator is not None:
            metrics.update(self.transfer_evaluator(model))
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        metrics.update(speed_metrics(metric_key_prefix, start))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def create_optimizer(self, model=None):
        """The default optimizer, with the proxy's, the head's and the in-encoder scorer's parameters in their own
        groups at ``--proxy_learning_rate``, ``--head_learning_rate`` (the original GS repo's ``--model_head_lr``) and
        ``--scorer_learning_rate``.

        Weight decay follows the Trainer's rule (none on biases and LayerNorm weights), which is the original's.
        """
        opt_model = self.model if model is None else model
        rates = {"proxy.": getattr(self.args, "proxy_learning_rate", None),
                 "mlp.": getattr(self.args, "head_learning_rate", None),
                 "layer_scorer.": getattr(self.args, "scorer_learning_rate", None)}
        if self.optimizer is None and any(rate is not None for rate in rates.values()):
            decay = set(self.get_decay_parameter_names(opt_model))

            def part(name: str) -> str:
                return next((prefix for prefix in rates if name.startswith(prefix)), "")

            groups = []
            for prefix in ("", *rates):
                lr = self.args.learning_rate if rates.get(prefix) is None else rates[prefix]
                for decayed in (True, False):
                    params = [
                        p for n, p in opt_model.named_parameters()
                        if p.requires_grad and (n in decay) == decayed and part(n) == prefix
                    ]  # fmt: skip
                    if params:
                        wd = self.args.weight_decay if decayed else 0.0
                        groups.append({"params": params, "weight_decay": wd, "lr": lr})
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer(model)

    # ------------------------------------------------------------------ model card

    def write_model_card(self, folder: str | None = None) -> None:
        """Write the model card (model, recipe, keep statistics and STS numbers so far) to ``folder``
        (default ``output_dir``)."""
        model = self.accelerator.unwrap_model(self.model)
        split = getattr(self.sts_evaluator, "split", "dev")
        facts = {"training": training_facts(self.args, self.state.global_step, self.state.epoch, self.model_card_data),
                 **metric_facts(self.state.log_history, split)}
        kind = "SimCSE-GS" if model.config.use_gs else "SimCSE"
        write_model_card(folder or self.args.output_dir, model.config, f"{kind} sentence encoder",
                         checkpoint_usage(model.config.use_gs), facts)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as the Trainer does (the model's code comes with it, see ``auto_map``), then write the card."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            self.write_model_card(output_dir)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """Our card instead of the Trainer's generic one (``push_to_hub`` writes it just before uploading)."""
        if self.is_world_process_zero():
            self.write_model_card()
