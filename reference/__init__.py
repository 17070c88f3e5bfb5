"""Minimal training loops in which effopt is measured: on-policy distillation and EchoDistill."""
