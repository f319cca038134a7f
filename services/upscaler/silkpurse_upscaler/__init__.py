"""The upscaler stage: Real-ESRGAN-family networks in PyTorch (see docs/upscaler.md).

Import :mod:`silkpurse_upscaler.engine` for :class:`~silkpurse_upscaler.engine.Upscaler`; this
package itself stays light so that registering the catalogue does not import torch.
"""
