"""Plans for the command line: the same :func:`~silkpurse.plan.build_plan` the runners use,
with model identities from the weights files instead of loaded engines."""

from __future__ import annotations

from pathlib import Path

from silkpurse.files import sha256_of
from silkpurse.media.probe import probe
from silkpurse.models import resolve_weights
from silkpurse.plan import Backend, JobOptions, JobPlan, ModelRef, Precision, build_plan, stages_needed


def plan_for(source: Path, options: JobOptions, device: str) -> JobPlan:
    options.validate()
    info = probe(source)
    needs_upscale, needs_interp = stages_needed(info, options)
    wanted, backend = options.precision, options.backend or "eager"
    upscaler = _planned_ref(options.upscale_model, "upscale", device, wanted, backend) if needs_upscale else None
    interpolator = _planned_ref(options.interp_model, "interpolate", device, wanted, backend) if needs_interp else None
    return build_plan(info, sha256_of(source), options, upscaler=upscaler, interpolator=interpolator)


def _planned_ref(model: str, kind: str, device: str, wanted: Precision | None, backend: Backend) -> ModelRef:
    """The model as the engines would name it: the precision they choose on ``device`` depends on
    the family (bf16 on CPUs with native bf16 only for families faithful in it), so the network's
    descriptor is loaded, though not moved to any device."""
    import torch

    from silkpurse.device import resolve_device
    from silkpurse.nn.architecture import load_model
    from silkpurse.nn.checkpoint import read_state_dict
    from silkpurse.nn.engine import choose_precision

    weights = resolve_weights(model, kind)  # type: ignore[arg-type]
    descriptor = load_model(read_state_dict(weights.path), kind=kind)  # type: ignore[arg-type]
    # A plan for a GPU can be made on a machine without one: only "auto" looks at this machine.
    target = resolve_device(device) if device == "auto" else torch.device(device)
    precision = choose_precision(target, descriptor, wanted)
    return ModelRef(weights.name, weights.sha256, precision, descriptor.family, backend)
