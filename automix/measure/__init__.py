"""What the project measures mixes with, below training, evaluation, style transfer and reverse.

* :mod:`automix.measure.bark` — the Bark scale (NumPy);
* :mod:`automix.measure.features` — the Diff-MST audio features (torch);
* :mod:`automix.measure.distances` — AF loss and (sum/difference) MRSTFT between mixes.
"""
