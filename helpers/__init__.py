"""Helpers for CSDS 600 Homework 1, one concept a module.

data (MNIST), vae (model and objective), kl (question 2), made (question 1), flows (question 3),
train (config, steps, loop, CLI), devices (device, precision, memory layout), checkpoints (files,
their checks, history files), reports (the shipped model or a retrain, and its summaries),
study (seed and precision studies), analysis (beyond the assignment), plots (drawing), figures
(the notebook's figures, one list, and how each is saved and shown), widgets, files (atomic
writes), pdf (offline export) and benchmark (training-step speed).
"""
