"""Analyses of a trained or freshly initialised network: the seeds' claims, measured.

- ``lesion`` (Veit et al. 2016): remove residual branches of the trained net, one at a time and
  k at random, and measure validation accuracy.
- ``signal`` (Brock et al. 2021): per block, the squared channel mean and the channel variance
  of the activations at initialisation.
- ``shatter`` (Balduzzi et al. 2017): correlation of input gradients at neighbouring points on a
  line of inputs, at initialisation, per block.
- ``landscape`` (Goodfellow et al. 2015; Li et al. 2018): the loss on the line from the initial to
  the trained weights, and on a plane around the trained weights along two filter-normalised
  random directions.

Each function takes a model and tensors and returns the record part it fills
(``resbench.store``); ``run_analyses`` runs what a recipe asks for on a trial. Never imports
optuna or ray; the report reads the records, never this package.
"""
from resbench.analysis.landscape import filter_normalized_direction, landscape, linear_path, plane
from resbench.analysis.lesion import lesion_study, removed
from resbench.analysis.run import run_analyses
from resbench.analysis.shatter import gradient_correlation, line_between, shattered_gradients
from resbench.analysis.signal import signal_propagation

__all__ = [
    "filter_normalized_direction",
    "gradient_correlation",
    "landscape",
    "lesion_study",
    "line_between",
    "linear_path",
    "plane",
    "removed",
    "run_analyses",
    "shattered_gradients",
    "signal_propagation",
]
