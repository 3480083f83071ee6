"""Evaluation: STS (and SentEval's transfer tasks) of checkpoints and plain encoders, and keep maps.

``sts`` (SentEval's STS through our ``senteval`` package, the result tables, the in-training evaluator),
``hf_encoder`` (plain Hugging Face encoders behind the same ``encode``), ``keep_map`` (which tokens a proxy keeps),
``evaluate`` (the ``evaluation.py`` command). A new evaluation task goes into ``SentEval/senteval/`` (one file per
task kind) and is listed where ``evaluate`` resolves task sets.
"""
