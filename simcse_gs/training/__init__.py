"""Training: the ``train.py`` command and what it is made of.

``arguments`` (dataclass flags; the model's come from :data:`simcse_gs.model.MODEL_SETTINGS`) -> ``data`` (training
files, collator; ``mlm`` masking) -> the model (:mod:`simcse_gs.model`) -> ``trainer`` (the Hugging Face Trainer
with the Gumbel temperature, GS logging, STS evaluation) -> saved checkpoints (``resume`` checks them before a run
continues). ``idf`` computes the IDF control's table from the training file. ``train`` is the entry point.
"""
