"""SimCSETrainer: the Hugging Face Trainer with the Gumbel temperature, GS logging, STS evaluation, proxy LR.

Only public extension points are overridden: ``compute_loss``, ``log``, ``evaluate``, ``create_optimizer`` (plus
one callback, :class:`FiniteLossCheck`).

No host synchronisation per training step: the logged statistics are summed on the device and read at logging
time, and a non-finite loss is recorded on the device and checked only where training is about to log, evaluate,
save or stop (see :meth:`SimCSETrainer.check_finite_loss`), so the CPU can queue the next step's kernels while
the GPU still runs this one.

The temperature schedule's position is the Trainer's ``global_step`` (optimizer steps), which every checkpoint
stores in ``trainer_state.json`` and ``--resume_from_checkpoint`` restores, so a resumed run continues the
schedule where it stopped.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import speed_metrics

from .gumbel import TauSchedule
from .keep import KeepStatsAccumulator, add_keep_histogram
from .sts_eval import STSEvaluator

LOGGED_OUTPUTS = ("contrastive_loss", "mlm_loss", "keep_rate_loss", "keep_prob", "keep_rate", "keep_entropy")


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
    def __init__(self, *args: Any, sts_evaluator: STSEvaluator | None = None, **kwargs: Any):
        # The Trainer refuses eval_strategy != "no" without an eval_dataset; our "eval dataset" is the evaluator.
        if sts_evaluator is not None and kwargs.get("eval_dataset") is None:
            kwargs["eval_dataset"] = sts_evaluator
        super().__init__(*args, **kwargs)
        self.sts_evaluator = sts_evaluator
        cfg = self.model.config
        self.tau_schedule = TauSchedule(cfg.init_tau, cfg.min_tau, cfg.tau_decay_rate) if cfg.use_gs else None
        self._log_tau = cfg.use_gs and cfg.gs_estimator != "reinforce"  # REINFORCE samples Bernoulli(p): no tau
        # Sums of the logged values since the last log: device tensors (float64, so that the means are exactly
        # those of the per-step floats) or Python floats (tau); read once per log.
        self._sums: dict[str, Any] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        # The first non-finite training loss since the last check, kept on the loss's device: (global step, value).
        self._bad_step: torch.Tensor | None = None
        self._bad_loss: torch.Tensor | None = None
        self._step_epochs: dict[int, float] = {}
        self.add_callback(FiniteLossCheck(self))

    @property
    def current_tau(self) -> float | None:
        return None if self.tau_schedule is None else self.tau_schedule(self.state.global_step)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs, tau=self.current_tau)
        loss = outputs.loss
        if model.training:
            self._record_loss(loss)
            if self._log_tau:
                self._sums["tau"] += self.current_tau  # the temperature this step used
                self._counts["tau"] += 1
            for key in LOGGED_OUTPUTS:
                value = outputs.get(key)
                if value is not None:
                    self._sums[key] += value.detach().to(_sum_dtype(value.device))  # stays on the device
                    self._counts[key] += 1
        return (loss, outputs) if return_outputs else loss

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
        """STS-B and SICK-R Spearman on the evaluator's split (metrics ``eval_stsb_spearman``, ...)."""
        evaluator = eval_dataset if isinstance(eval_dataset, STSEvaluator) else self.sts_evaluator
        if evaluator is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        start = time.time()
        model = self.accelerator.unwrap_model(self.model)
        keep_sample = KeepStatsAccumulator(sample_size=20_000) if model.config.use_gs else None
        metrics = evaluator(model, keep_sample)  # keep_sample: p of the evaluated sentences' decided tokens
        add_keep_histogram(self.callback_handler.callbacks, keep_sample, self.state.global_step)  # no-op without tb
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        metrics.update(speed_metrics(metric_key_prefix, start))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def create_optimizer(self, model=None):
        """The default optimizer, with the proxy's parameters in their own groups at ``--proxy_learning_rate``."""
        proxy_lr = getattr(self.args, "proxy_learning_rate", None)
        opt_model = self.model if model is None else model
        if self.optimizer is None and proxy_lr is not None and getattr(opt_model, "proxy", None) is not None:
            decay = set(self.get_decay_parameter_names(opt_model))
            groups = []
            for is_proxy, lr in ((False, self.args.learning_rate), (True, proxy_lr)):
                for decayed in (True, False):
                    params = [
                        p for n, p in opt_model.named_parameters()
                        if p.requires_grad and (n in decay) == decayed and n.startswith("proxy.") == is_proxy
                    ]  # fmt: skip
                    if params:
                        wd = self.args.weight_decay if decayed else 0.0
                        groups.append({"params": params, "weight_decay": wd, "lr": lr})
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer(model)

