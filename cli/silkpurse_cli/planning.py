"""Plans for the command line: the same :func:`~silkpurse.plan.build_plan` the runners use,
with model identities from the weights files instead of loaded engines."""

from __future__ import annotations

from pathlib import Path

from silkpurse.files import sha256_of
from silkpurse.media.probe import probe
from silkpurse.models import resolve_weights
from silkpurse.plan import JobOptions, JobPlan, ModelRef, build_plan, stages_needed


def plan_for(source: Path, options: JobOptions, device: str) -> JobPlan:
    options.validate()
    info = probe(source)
    needs_upscale, needs_interp = stages_needed(info, options)
    precision = "fp16" if _is_cuda(device) else "fp32"
    upscaler = _planned_ref(options.upscale_model, "upscale", precision) if needs_upscale else None
    interpolator = _planned_ref(options.interp_model, "interpolate", precision) if needs_interp else None
    return build_plan(info, sha256_of(source), options, upscaler=upscaler, interpolator=interpolator)


def _planned_ref(model: str, kind: str, precision: str) -> ModelRef:
    weights = resolve_weights(model, kind)  # type: ignore[arg-type]
    family = weights.spec.family if weights.spec is not None else ""
    return ModelRef(weights.name, weights.sha256, precision, family)  # type: ignore[arg-type]


def _is_cuda(device: str) -> bool:
    if device != "auto":
        return device.startswith("cuda")
    from silkpurse.device import resolve_device

    return resolve_device("auto").type == "cuda"
