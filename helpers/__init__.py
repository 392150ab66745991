"""Helpers for CSDS 600 Homework 1, one concept a module: the homework's library.

data (MNIST), vae (model and objective), kl (question 2), made (question 1), flows (question 3),
train (config, steps, loop, CLI), devices (device, precision, memory layout), checkpoints (files,
their checks, history files), reports (the shipped model or a retrain, and its summaries),
study (the shipped seed and precision studies), analysis (beyond the assignment), plots
(drawing), figures (the notebook's figures, one list, and how each is saved and shown), widgets
(the interpolation explorer) and files (atomic writes).

The project's command-line tools live apart, in ``tools/`` (PDF export, benchmark, the study's
runner, saved widget ids); they import this package, never the other way round.
"""
