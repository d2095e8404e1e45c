"""Figures and the numbers they show, drawn from arrays: numpy and matplotlib only (no torch, no files). The training
figures (`training`) are drawn by the report and the instruments; each analysis of `reslab analyze` has its own
(`lesion`, `landscape`, `shattered`, `paths`). One look for all (`style`)."""

# The analyses of `reslab analyze`, each with its figure module here, in the order the report shows them.
ANALYSES = ("lesion", "landscape", "shattered", "paths", "signal")
