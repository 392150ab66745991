"""The project's command-line tools, one module a job; each runs as ``python -m tools.<name>``.

pdf (offline PDF export of the executed notebook), benchmark (training-step speed), study (the
seed and precision study: runs, collect, probe, tables) and widget_ids (saved widget ids fixed by
their order). They import ``helpers``; ``helpers`` imports none of them.
"""
