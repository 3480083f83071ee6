"""simcse-gs: SimCSE sentence embeddings with a learned Gumbel-Softmax token-keep proxy.

Where each idea lives: ``gumbel`` (relaxation, tau schedule), ``proxy`` (token scorer), ``keep`` (forced
tokens, inference rule, keep statistics), ``attention`` (the patch), ``pooling``, ``loss``, ``mlm``,
``modeling`` (the model), ``data``, ``arguments``, ``trainer``, ``sts_eval`` (STS through SentEval).

``SimCSEGSModel`` and ``SimCSEGSConfig`` are imported on first use, so that light modules (``data_files``,
``cli``) start without torch and transformers: ``python -m simcse_gs.data_files`` is what the shell scripts call.
"""

from typing import Any

__all__ = ["SimCSEGSConfig", "SimCSEGSModel"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import modeling  # also registers the classes with AutoConfig / AutoModel

        return getattr(modeling, name)
    raise AttributeError(f"module 'simcse_gs' has no attribute {name!r}")
