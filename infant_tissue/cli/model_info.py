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
        f"patch/stride  {bundle.metadata.get('patch_size')} / {bundle.metadata.get('stride')}",
        f"software      {prov.get('software', '?')}  created {prov.get('created', '?')}",
    ]
    if bundle.metadata.get("licence"):
        lines.append(f"licence       {bundle.metadata['licence']}")
    print("\n".join(lines))
    return ExitCode.OK
