"""Evaluation: how well a model segments (paper Sec. 5, Tables 1-2).

- :mod:`.metrics` - J (region similarity), F (boundary measure) and J&F exactly as the DAVIS
  toolkit computes them, per frame, per sequence and over a results folder;
- :mod:`.benchmark` - ``aot-edu eval``: a model over a benchmark split as the official evaluator
  runs it (result PNGs, new YouTube-VOS objects, resuming, J&F or the submission zip);
- :mod:`.analysis` - measurements of a trained model on held-out videos (baselines, drift,
  memory ablation, identity bank, attention entropy).
"""
