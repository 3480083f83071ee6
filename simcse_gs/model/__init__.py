"""The model a checkpoint ships: exactly these modules, copied into every saved folder (``config.json``'s
``auto_map`` names ``modeling``), and importing nothing else of simcse_gs.

``configuration`` (every setting once) -> ``modeling`` (the model: score -> keep -> attend -> pool -> loss), with
``registry`` + ``keep_policy`` + ``policy_*`` (how tokens are kept), ``proxy`` (the token scorer), ``gumbel``
(relaxation, temperature), ``budget`` (keep the best ceil(r n)), ``keep`` (forced tokens, inference rule, keep
statistics), ``attention`` (the patch in every layer), ``pooling``, ``loss``, ``mlm_head``, ``pruning``,
``encoding`` / ``precision`` (batched inference), ``folder_checks`` (is a folder a sound checkpoint) and
``st_module`` (the model as one sentence-transformers module, for exports).
"""

from .configuration import MODEL_SETTINGS, SimCSEGSConfig
from .modeling import SimCSEGSModel, SimCSEGSOutput

__all__ = ["MODEL_SETTINGS", "SimCSEGSConfig", "SimCSEGSModel", "SimCSEGSOutput"]
