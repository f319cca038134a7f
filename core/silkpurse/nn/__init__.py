"""The core's torch part: what both model stages share (see docs/architecture.md, "Model layer").

Only the model stages (upscaler, interpolator) import this subpackage; it needs the core's
``[torch]`` extra. The core's top-level modules never import it, so they stay torch-free.

* :mod:`silkpurse.nn.checkpoint`: one reader for ``.pth/.pt/.pkl/.ckpt`` and ``.safetensors``;
* :mod:`silkpurse.nn.architecture`: the architecture registry, :func:`load_model`, the descriptor;
* :mod:`silkpurse.nn.engine`: the surface both engines share (name, device, precision,
  ``warm_up()``, ``identity()``).
"""
