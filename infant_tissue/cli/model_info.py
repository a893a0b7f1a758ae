"""``infant-tissue model-info BUNDLE``: verify a weight bundle and describe it."""

from __future__ import annotations

import argparse
import json

from ._common import ExitCode, guarded, parse_args, setup_logging

PROG = "infant-tissue model-info"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check every member's sha256, rebuild each member strictly, and print the "
        "bundle's architecture, parameter count and provenance.",
    )
    parser.add_argument("bundle", help="bundle folder (contains model.json)")
    parser.add_argument("--json", action="store_true", help="print model.json as JSON")
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args

    setup_logging(PROG)
    return guarded(PROG, lambda: _describe(args))


def _describe(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..nn import count_parameters

    bundle = load_bundle(args.bundle)
    params = count_parameters(bundle.build_network())
    for i in range(len(bundle)):
        bundle.build_member(i)
    if args.json:
        print(json.dumps(bundle.metadata, indent=2))
        return ExitCode.OK
    arch = bundle.architecture
    prov = bundle.metadata.get("provenance", {})
    lines = [
        f"bundle        {bundle.name}",
        f"path          {bundle.path}",
        f"sha256        {bundle.sha256}  (of model.json, which lists every member's sha256)",
        f"architecture  {arch['name']} {'fused' if arch.get('fused') else 'training form'}"
        f" {json.dumps(arch.get('kwargs', {}))}",
        f"parameters    {params:,} per member",
        f"members       {len(bundle)} (all checksums verified, all load strictly)",
        f"inputs        {', '.join(bundle.metadata['input_modalities'])}",
        "classes       "
        + ", ".join(f"{c['index']}={c['abbreviation']}" for c in bundle.metadata["classes"]),
        _geometry(bundle),
        f"normalisation {bundle.normalisation_method}",
        f"software      {prov.get('software', '?')}  created {prov.get('created', '?')}",
    ]
    if bundle.postprocess_options:
        options = ", ".join(f"{k}={v}" for k, v in bundle.postprocess_options.items())
        lines.append(f"postprocess   {options}")
    stage = bundle.first_stage()
    if stage is not None:
        lines.append(
            f"first stage   {stage.name}: {stage.architecture['name']}, {len(stage)} members, "
            f"sha256 {stage.sha256} (its segmentation gives the context maps)"
        )
    if bundle.metadata.get("licence"):
        lines.append(f"licence       {bundle.metadata['licence']}")
    print("\n".join(lines))
    return ExitCode.OK


def _geometry(bundle) -> str:
    """Window geometry of a 3-D bundle, views and weights of a 2-D one."""
    if bundle.dimensions == 2:
        weights = bundle.view_weights
        views = ", ".join(f"{v} ×{weights[v]:g}" for v in bundle.views)
        groups = len(bundle.member_groups())
        return f"2-D slices    views {views}; {groups} member group(s), one network per view"
    return f"patch/stride  {bundle.metadata.get('patch_size')} / {bundle.metadata.get('stride')}"
