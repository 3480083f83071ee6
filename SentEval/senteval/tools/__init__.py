"""Classifier tools of the transfer tasks: SentEval's logistic regression and its three validation protocols."""
