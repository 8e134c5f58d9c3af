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
from . import plots, report

log = logging.getLogger("ccip")
TEMPLATES = Path(__file__).parent / "templates"


def _qa_colour(score: float | None) -> str:
    # ALMA pipeline QA colours: red < 0.33 <= yellow < 0.66 <= blue < 0.9 <= green
    if score is None:
        return "#cccccc"
    return "#d9534f" if score < 0.33 else "#f0ad4e" if score < 0.66 else "#5bc0de" if score < 0.9 else "#5cb85c"


def _draw(tree: RunTree) -> tuple[dict, list[str]]:
    """The thumbnails and stage 11's plots; whatever cannot be drawn is left out."""
    thumbs, stokes = {}, []
    fan = fanin.load(tree)
    try:
        if fan is not None:
            thumbs = plots.thumbnails(tree, [r for r in fan.results if r.images.get("image_pbcor_subim")])
    except Exception as e:  # noqa: BLE001 - the report must render even when images are broken
        log.warning("thumbnails failed: %s", e)
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
    products = sorted(p.name for p in tree.products.glob("*")) if tree.products.exists() else []
    common = {"r": r, "products": products, "products_rel": os.path.relpath(tree.products, tree.html)}
    for s in r["stages"]:
        page = env.get_template(f"stage_{s['step']}.html")
        write_text(tree.html / naming.stage_page(s["number"]), page.render(stage=s, **common))
    write_json(tree.report_json, r)
    write_text(tree.html / "index.html", env.get_template("index.html").render(stage=None, **common))
    return tree.html / "index.html"
