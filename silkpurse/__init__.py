"""silkpurse: turn a poor video recording into a sharp, smooth one.

This is the small core package shared by every stage: errors, settings, the frame-batch
format, batch stores, media probing, the model registry and the embedded pipeline. Each
stage's own logic lives with its service under ``services/``.
"""

__version__ = "0.1.0"
