"""The run's HTML report: ``html/index.html`` and one page per stage (jinja2), with its plots.

:func:`write` draws the plots (:mod:`.plots`), builds the data model (:mod:`.report`) and renders
``templates/index.html`` and ``templates/stage_<step>.html`` for every stage. Pages are written
to a temporary name and renamed; index.html last, so a complete index means complete pages.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .. import fanin, naming
from ..runtree import RunTree, read_json, write_json, write_text
from ..stages import scores as stagescores
from . import plots, qaplots, report, tables, thumbs as thumbsmod

log = logging.getLogger("ccip")
TEMPLATES = Path(__file__).parent / "templates"


def _qa_colour(score: float | None) -> str:
    # ALMA pipeline QA colours: red < 0.33 <= yellow < 0.66 <= blue < 0.9 <= green
    if score is None:
        return "#cccccc"
    return "#d9534f" if score < 0.33 else "#f0ad4e" if score < 0.66 else "#5bc0de" if score < 0.9 else "#5cb85c"


def _try(what: str, fn, *args, default=None):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the report must render even when a plot cannot be drawn
        log.warning("%s failed: %s", what, e)
        return [] if default is None else default


def _stage_plots(tree: RunTree, fan) -> dict[str, list[str]]:
    """The QA plots of stages 6, 7 and 10 (:mod:`.qaplots`), by step."""
    tg = read_json(tree.targets_json, {})
    out = {"editimlist_ccip": _try("flag summary plot", qaplots.flag_summary, tree.html, tg)}
    if fan is not None:
        out["image_spw_group"] = _try("beam plot", qaplots.beams, tree.html, [p.to_json() for p in fan.planes])
        keep = fan.keep_of()
        rows = [{"group": r.group, "freq_hz": r.target.reffreq_hz, "keep": keep.get(r.group, True),
                 "madrms": {s: v.get("madrms") for s, v in ((r.qa.get("stats") or {}).get("image") or {}).items()},
                 "rms_median": {s: v.get("median") for s, v in ((r.qa.get("stats") or {}).get("rms") or {}).items()}}
                for r in fan.results if r.qa.get("stats")]
        out["cutouts"] = _try("MAD-rms plot", qaplots.mad_rms, tree.html, rows)
    return out


def _tables(fan, analysis) -> dict:
    return {"cutout_stats": tables.cutout_stats(fan, stagescores.noise_ratios(fan)) if fan is not None else [],
            "fits": tables.fit_rows(analysis or {}), "model": tables.model_rows(analysis or {})}


def _draw(tree: RunTree) -> tuple[dict, list[str]]:
    """The thumbnails and stage 11's plots; whatever cannot be drawn is left out."""
    thumbs, stokes = {}, []
    fan = fanin.load(tree)
    if fan is not None:
        thumbs = _try("thumbnails", thumbsmod.thumbnails, tree,
                      [r for r in fan.results if r.images.get("image_pbcor_subim")], default={})
    analysis = read_json(tree.stage_data("analyzestokes"))
    if analysis:
        try:
            stokes = plots.stokes_plots(tree, analysis)
            write_json(tree.html / "stage11" / "analyzestokes.json", analysis)
        except Exception as e:  # noqa: BLE001
            log.warning("stage 11 plots failed: %s", e)
    return thumbs, stokes


def write(tree: RunTree, field_id: str, run_id: str, stages) -> Path:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    env.globals["qa_colour"] = _qa_colour
    env.globals["page_of"] = naming.stage_page
    tree.html.mkdir(parents=True, exist_ok=True)
    thumbs, stokes = _draw(tree)
    r = report.build(tree, field_id, run_id, stages, thumbs, stokes)
    fan = fanin.load(tree)
    r["stage_plots"] = {**_stage_plots(tree, fan), "analyzestokes": stokes}
    r["tables"] = _try("tables", _tables, fan, read_json(tree.stage_data("analyzestokes")), default={})
    products = sorted(p.name for p in tree.products.glob("*")) if tree.products.exists() else []
    common = {"r": r, "products": products, "products_rel": os.path.relpath(tree.products, tree.html)}
    for s in r["stages"]:
        page = env.get_template(f"stage_{s['step']}.html")
        write_text(tree.html / naming.stage_page(s["number"]), page.render(stage=s, **common))
    write_json(tree.report_json, r)
    write_text(tree.html / "index.html", env.get_template("index.html").render(stage=None, **common))
    return tree.html / "index.html"
