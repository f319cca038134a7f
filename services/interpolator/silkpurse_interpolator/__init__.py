"""RIFE frame interpolation: engine, rate plan and pipeline stage (see docs/interpolator.md)."""
