"""A small renderer of the kustomize features k8s/ uses, for machines without ``kubectl``.

``kubectl kustomize`` is the reference (tests/test_deploy.py renders with it where installed and
checks that this renderer agrees); a kustomization using a field this module does not know raises
:class:`Unsupported`, so the two cannot silently drift apart. Supported: ``resources`` (files and
folders), ``components``, ``namespace``, ``labels`` (``pairs`` on metadata only), ``images``
(``newName``/``newTag``), strategic-merge ``patches`` (``path``, optional ``target`` kind/name),
``configMapGenerator`` and ``secretGenerator`` (``literals``, ``envs``) with
``generatorOptions.disableNameSuffixHash: true``.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "patches",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def _load_docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization(folder: Path) -> Obj:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (folder / name).is_file():
            data: Obj = yaml.safe_load((folder / name).read_text())
            unknown = set(data) - KNOWN_FIELDS
            if unknown:
                raise Unsupported(f"{folder}: {sorted(unknown)}")
            return data
    raise Unsupported(f"{folder}: no kustomization file")


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as far as k8s/ needs it: maps merge, lists of named items merge by name,
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        out_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            for n, existing in enumerate(out_list):
                if existing["name"] == item["name"]:
                    out_list[n] = _merge(existing, item)
                    break
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _generated(folder: Path, data: Obj) -> list[Obj]:
    options = data.get("generatorOptions", {})
    gens = data.get("configMapGenerator", []) + data.get("secretGenerator", [])
    if gens and options != {"disableNameSuffixHash": True}:
        raise Unsupported(f"{folder}: generatorOptions {options}")
    out: list[Obj] = []
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in data.get(key, []):
            if set(gen) - {"name", "literals", "envs"}:
                raise Unsupported(f"{folder}: {key} {sorted(gen)}")
            pairs: dict[str, str] = {}
            lines = list(gen.get("literals", []))
            for env in gen.get("envs", []):
                lines += [ln for ln in (folder / env).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            for line in lines:
                name, _, value = line.partition("=")
                pairs[name.strip()] = value
            obj: Obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
            if kind == "Secret":
                obj["type"] = "Opaque"
                obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in pairs.items()}
            else:
                obj["data"] = pairs
            out.append(obj)
    return out


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get(
        "spec", {}
    )
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def render(folder: Path) -> list[Obj]:
    """The objects ``kubectl kustomize folder`` would print (order aside)."""
    folder = folder.resolve()
    data = _kustomization(folder)
    objs: list[Obj] = []
    for res in data.get("resources", []):
        path = folder / res
        objs += render(path) if path.is_dir() else _load_docs(path)
    objs += _generated(folder, data)
    for comp in data.get("components", []):
        cdata = _kustomization(folder / comp)
        if cdata.get("kind") != "Component" or set(cdata) - {"apiVersion", "kind", "resources"}:
            raise Unsupported(f"{folder / comp}: only a Component with resources")
        for res in cdata.get("resources", []):
            objs += _load_docs(folder / comp / res)
    for patch in data.get("patches", []):
        if set(patch) - {"path", "target"} or set(patch.get("target", {})) - {"kind", "name"}:
            raise Unsupported(f"{folder}: patch {patch}")
        body = yaml.safe_load((folder / patch["path"]).read_text())
        target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [o for o in objs if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
        if not hits:
            raise Unsupported(f"{folder}: patch {patch} matches nothing")
        for obj in hits:
            body_named = copy.deepcopy(body)
            body_named["metadata"]["name"] = obj["metadata"]["name"]
            obj.update(_merge(obj, body_named))
    for obj in objs:
        if "namespace" in data and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = data["namespace"]
        for label in data.get("labels", []):
            if set(label) - {"pairs"}:
                raise Unsupported(f"{folder}: labels {label}")
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in data.get("images", []):
            for container in _containers(obj):
                name, _, _tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return objs
