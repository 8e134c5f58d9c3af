"""``ccip``: simulate a field, or run a whole field serially without Airflow.

    ccip simulate [--archive DIR] [--field-id ID] [--preset tiny|small|vlass-b] [--nchan N]
                  [--flag-group 14,15,16,17|none] [--seed N] [--variant NAME ...]
                  [--se-mode VLASS-SE-CONT-AWP-P001|...]
    ccip run FIELD_ID [--archive DIR] [--work DIR] [--run-id ID] [--spw-groups 2,3 4,5 ...]
    ccip replay products/ccip_pipescript.py [--run-id ID] [--archive DIR] [--work DIR]
    ccip casa-config
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ccip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("simulate", help="write a simulated VLASS field into an archive folder")
    s.add_argument("--archive", help="archive root (default: $CCIP_ARCHIVE_ROOT or .data/archive)")
    s.add_argument("--field-id", default=None)
    s.add_argument("--preset", default="tiny")
    s.add_argument("--nchan", type=int, help="channels per 128 MHz spw (default: the preset's)")
    s.add_argument("--flag-group", help="spw group to flag completely, e.g. 14,15,16,17; 'none' for none")
    s.add_argument("--seed", type=int, help="random seed (sky, noise, phase errors)")
    s.add_argument("--variant", action="append", default=[],
                   help="archive variant to write (repeatable): two_observations, stale_observation_row, "
                        "calibrator_field, missing_spw, model_imsize, model_cell, mask_cell")
    s.add_argument("--se-mode", help="SEIP imaging_mode the SE-CONT products are made with "
                   "(VLASS-SE-CONT-MOSAIC, VLASS-SE-CONT, VLASS-SE-CONT-AWP-P001, ...; default: the preset's)")
    r = sub.add_parser("run", help="run every stage of one field serially, without Airflow")
    r.add_argument("field_id")
    r.add_argument("--archive")
    r.add_argument("--work")
    r.add_argument("--run-id")
    r.add_argument("--spw-groups", nargs="+", help="override the CCIP spw groups, e.g. 2,3 4,5")
    rp = sub.add_parser("replay", help="run a run's products/ccip_pipescript.py again, into a new run tree")
    rp.add_argument("script")
    rp.add_argument("--archive")
    rp.add_argument("--work")
    rp.add_argument("--run-id")
    sub.add_parser("casa-config", help="write the offline CASA configuration and check it")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from . import casa_env, settings

    if a.cmd == "casa-config":
        print(casa_env.ensure())
        print(casa_env.versions())
        return 0
    if a.cmd == "simulate":
        from .simulate import DEFAULT_FIELD_ID, simulate_field

        from .simulate import presets

        over = {}
        if a.nchan:
            over["nchan"] = a.nchan
        if a.flag_group:
            over["flag_group"] = None if a.flag_group.lower() == "none" else a.flag_group
        if a.seed is not None:
            over["seed"] = a.seed
        if a.se_mode:
            from .heuristics import se

            try:
                se.seip_mode(a.se_mode)
            except se.UnrestorableMode as e:
                print(f"ccip: --se-mode: {e}", file=sys.stderr)
                return 2
            over["se_mode"] = a.se_mode
        preset = presets.get(a.preset, **over)
        path = simulate_field(a.archive or settings.archive_root(), a.field_id or DEFAULT_FIELD_ID, preset,
                              variants=tuple(a.variant))
        print(path)
        return 0
    from .exceptions import InputError
    from .pipeline import run_serial

    if a.cmd == "replay":
        import time

        from .provenance import replay

        run_id = a.run_id or time.strftime("replay__%Y%m%dT%H%M%S", time.gmtime())
        try:
            replay(a.script, run_id, a.archive and os.path.abspath(a.archive), a.work and os.path.abspath(a.work))
        except InputError as e:
            print(f"ccip: bad input: {e}", file=sys.stderr)
            return 2
        return 0

    params = {"field_id": a.field_id, **({"spw_groups": a.spw_groups} if a.spw_groups else {})}
    try:
        # the same parameter check as the DAG's first task (ccip_ops.runparams); paths absolute:
        # CASA runs with working/ as its current directory
        out = run_serial(params, a.run_id, a.archive and os.path.abspath(a.archive), a.work and os.path.abspath(a.work))
    except InputError as e:
        print(f"ccip: bad input: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
