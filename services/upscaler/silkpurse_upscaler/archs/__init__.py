"""Architectures the upscaler can run, registered with the one registry of :mod:`silkpurse.nn.architecture`.

Each family module (``compact.py``, ``rrdbnet.py``) provides an ``ARCHITECTURE`` whose ``detect``
recognises a checkpoint by its keys and whose ``load`` infers its hyper-parameters from shapes
(spandrel style). Add a family by writing such a module and registering it here. Load any
upscaler checkpoint with ``silkpurse.nn.architecture.load_model(state, kind="upscale")``.
"""

from __future__ import annotations

from silkpurse.nn.architecture import register
from silkpurse_upscaler.archs import compact, rrdbnet

ARCHITECTURES = (register(rrdbnet.ARCHITECTURE), register(compact.ARCHITECTURE))

__all__ = ["ARCHITECTURES"]
