"""Sharing a trained model: ``export`` (sentence-transformers / Hugging Face folders), ``model_card`` (the README of
every saved folder), ``hub`` (what a push uploads beside the weights)."""
