"""The ``silkpurse`` command line and the embedded runner: the top layer, which runs the
stages (``silkpurse_extractor``, ``silkpurse_upscaler``, ``silkpurse_interpolator``,
``silkpurse_encoder``) in one process over the core's job plan and a local store."""
