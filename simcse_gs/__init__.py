"""simcse-gs: SimCSE sentence embeddings with a learned Gumbel-Softmax token-keep proxy.

Where each idea lives: ``gumbel`` (relaxation, tau schedule), ``proxy`` (token scorer), ``keep`` (forced
tokens, inference rule, keep statistics), ``attention`` (the patch), ``pooling``, ``loss``, ``mlm``,
``modeling`` (the model), ``data``, ``arguments``, ``trainer``, ``sts_eval`` (STS through SentEval).
"""

from .modeling import SimCSEGSConfig, SimCSEGSModel

__all__ = ["SimCSEGSConfig", "SimCSEGSModel"]
__version__ = "0.1.0"
