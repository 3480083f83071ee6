"""Pushing a training run to the Hugging Face Hub so that the repo loads on its own (card and code included)."""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback


class HubFilesCallback(TrainerCallback):
    """Every push uploads ``output_dir``, into which the Trainer copies only the config and weights of a
    checkpoint: put the model card and the modelling code there first, so the Hub repo loads on its own.

    ``trainer`` is a :class:`~simcse_gs.training.trainer.SimCSETrainer` (its ``write_model_card`` renders the card).
    """

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer.is_world_process_zero():
            os.makedirs(args.output_dir, exist_ok=True)
            self.trainer.accelerator.unwrap_model(self.trainer.model).save_code(args.output_dir)
            self.trainer.write_model_card(args.output_dir)
