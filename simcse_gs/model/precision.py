"""Inference precision: ``fp32`` (default), ``bf16`` or ``fp16`` autocast around the encoder's forward pass.

Weights stay float32; autocast runs the matrix products in the lower precision (bf16 on CPUs with AVX-512 BF16 /
AMX and on GPUs; fp16 on GPUs) and keeps reductions such as softmax and layer norm in float32. Embeddings come
back as float32 either way. Measured on MiniLM: the STS tables stay within 0.05 of fp32 (docs/PERFORMANCE.md).
Training precision is the Trainer's own ``--bf16`` / ``--fp16``.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
# torch's names too; "float32" is also sentence-transformers' default `precision` (there: no output quantisation)
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, flag: str = "precision") -> str:
    """The canonical name (``fp32`` / ``bf16`` / ``fp16``) of ``precision``; a clear error for anything else."""
    name = _ALIASES.get(precision, precision)
    if name not in PRECISIONS:
        raise ValueError(f"{flag} must be one of {', '.join(PRECISIONS)}, got '{precision}'.")
    return name


class _NoAutocast(contextlib.ContextDecorator):
    def __enter__(self) -> _NoAutocast:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


def autocast(precision: str, device: torch.device | str) -> contextlib.ContextDecorator:
    """The autocast context (also usable as a decorator) for ``precision`` on ``device``; ``fp32`` adds none."""
    precision = check_precision(precision)
    if precision == "fp32":
        return _NoAutocast()
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        raise ValueError(f"precision {precision}: torch has no autocast for device '{device_type}'; use fp32.")
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])
