"""simcse-gs: SimCSE sentence embeddings with a learned Gumbel-Softmax token-keep proxy.

The package is laid out as its architecture (docs/ARCHITECTURE.md):

* ``model/``: exactly what a checkpoint ships (configuration, model, keep policies, proxy, attention patch, poolers,
  pruning, the sentence-transformers module);
* ``training/``: arguments, data, the Trainer, the ``train.py`` entry, MLM masking, resume checks;
* ``evaluation/``: STS evaluation, encoders for plain models, keep maps, the ``evaluation.py`` entry;
* ``sharing/``: export, model cards;
* ``data_files/``: where the data files are, and fetching them;
* ``model_folder`` (what a model path is) and ``cli`` (one command-line convention), used by every command.

``SimCSEGSModel`` and ``SimCSEGSConfig`` are imported on first use, so that light modules (``data_files``,
``cli``) start without torch and transformers: ``python -m simcse_gs.data_files`` is what the shell scripts call.
"""

from typing import Any

__all__ = ["SimCSEGSConfig", "SimCSEGSModel"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import model  # also registers the classes with AutoConfig / AutoModel

        return getattr(model, name)
    raise AttributeError(f"module 'simcse_gs' has no attribute {name!r}")
