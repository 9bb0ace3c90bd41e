"""Evaluation: audio-feature metrics (``features``), ``automix eval`` and its reports."""
