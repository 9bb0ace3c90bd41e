"""Training data: synthetic multitracks (``synth``), the real reference corpus (``refs``) and
dataset loaders (``loaders``). See docs/data-card.md."""
