"""Test reports of runs: metrics, figures, and `python -m utils.report` to redraw them."""
