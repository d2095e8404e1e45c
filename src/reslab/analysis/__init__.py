"""Analyses that test *why* shortcuts work, run on finished runs from their checkpoints (``reslab analyze``; signal
builds fresh nets from their configs).

    reslab analyze lesion     DIR   delete or reorder blocks at test time (Veit et al. 2016)
    reslab analyze landscape  DIR   the loss along filter-normalised random directions (Li et al. 2018)
    reslab analyze shattered  DIR   how correlated the input gradients of nearby inputs are (Balduzzi et al. 2017)
    reslab analyze paths      DIR   how much gradient flows through paths of each length (Veit et al. 2016, §4.3)
    reslab analyze signal     DIR   gradient growth per layer at initialisation, beside theory (Yang et al. 2019)

DIR is a job directory or a sweep folder. Each analysis is a module here that measures (`Analysis`) and a module in
`reslab.plots` that draws and summarises what it measured (`Drawing`: numpy and matplotlib only);
`reslab.analysis.runner` loads the runs, caches each run's arrays in ``<job>/analysis/``, draws the comparison figure
into ``<DIR>/analysis/`` and writes both to TensorBoard. The report shows the figures it finds there.
"""

from __future__ import annotations

from reslab.plots import ANALYSES

LINES = {
    "lesion": "delete or reorder blocks at test time (Veit et al. 2016)",
    "landscape": "loss along filter-normalised random directions (Li et al. 2018)",
    "shattered": "how alike the input gradients of nearby inputs are (Balduzzi et al. 2017)",
    "paths": "gradient through paths of each length (Veit et al. 2016, §4.3)",
    "signal": "gradient growth per layer at initialisation, measured and predicted (Yang et al. 2019)",
}
# Kind -> (measuring module, one line), in `reslab.plots.ANALYSES`' order; its figure is reslab.plots.<kind>. Only the
# chosen one is imported.
KINDS = {kind: (f"reslab.analysis.{kind}", LINES[kind]) for kind in ANALYSES}
