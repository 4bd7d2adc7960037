"""Inference: the gateway client, providers, prompts and the mock gateway."""
