"""silkpurse: turn a poor video recording into a sharp, smooth one.

This is the small core package shared by every stage: errors, settings, the job plan, the
frame-batch format, batch stores, media probing and the model registry. It imports no stage:
each stage is its own distribution under ``services/<stage>/`` (``silkpurse_<stage>``), and
the runners (the command line and embedded runner in ``cli/``, the services, the flow) sit on top.
"""

__version__ = "0.1.0"
