"""Orchestrator adapters: thin translations of mlpipe.core pipelines."""
