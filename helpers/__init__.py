"""Helpers for CSDS 600 Homework 1, one concept a module.

data (MNIST), vae (model and objective), kl (question 2), train (loop, checkpoints, CLI),
made (question 1), flows (question 3), analysis (beyond the assignment), plots (drawing),
figures (the notebook's figures, one list), widgets, pdf (offline export) and benchmark
(training-step speed).
"""
