"""Runnable examples of effopt inside other frameworks (transformers' Trainer, TRL, accelerate). Each is a module with
a command line (`python -m examples.<name> --help`) and a `main(**kwargs)` that the tests call."""
