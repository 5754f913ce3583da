"""The recipe of the bundled tiny CLIP (``mapo_env/assets/tiny_clip``, selected by ``alignment="clip:tiny"``).

Modules:

- :mod:`tools.tiny_clip.model`: the architecture, the tokenizer and a randomly initialised model folder.
- :mod:`tools.tiny_clip.data`: crop/caption pairs cut from the procedural environments' own scenes.
- :mod:`tools.tiny_clip.evaluate`: truthful-vs-wrong accuracy on held-out scenes (the test split).
- :mod:`tools.tiny_clip.train`: contrastive training, calibration and the training report.

Run it with ``python tools/build_tiny_clip.py --help``. The runtime package only loads the result
(:func:`mapo_env.alignment.tiny_clip.tiny_clip_path`); nothing under ``mapo_env`` imports this package.
"""
