"""hifv_exportvlassdata (stage 12, spec §9): FITS products, position correction, manifest.

For each plane (spw group): the IQUV pbcor cutout and its rms cutout are split into IQU and
V images (``imsubimage``), exported with ``exportfits`` to ``products/`` with the ``s7_0.``
prefix removed, position-corrected per FITS for the plane's frequency and given the header
fixes and the VLASS keywords (:mod:`.exportfits`); rejected planes are exported and marked
``VLASSRJ``, every VLASS* keyword with NRAO's comment and the FITS CHECKSUM/DATASUM last. Then
the common-beam/common-WCS ``.com`` pair of each plane (:mod:`.combeam`; not in the manifest). The
parameter lists, ``casa_commands.log``, stage 11's ``stokes_analysis.ecsv`` (in the manifest as
``analysis_table``) and ``pipeline_manifest.xml`` are written too. Everything is staged in ``working/export_staging`` and moved into
``products/`` only when complete: a failed export leaves no half-written product, and a
re-run replaces the earlier files. The planes are exported ``workers`` at once, each in its own
process (:func:`export_plane`). Entry point: :func:`export_products`.
"""
from __future__ import annotations

import logging
import shutil
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import casa_env, casaimage, groupworkers, msinfo, naming, provenance
from ..model import FanIn, ImagingResult
from ..runtree import RunTree, read_json, remove, write_json
from . import combeam
from ._casa import Casa
from ..heuristics.imaging import image_type
from .exportfits import add_checksums, correct_position, fix_header

log = logging.getLogger("ccip")
RECIPE = "hifv_vlassCCIP"
PARAMETER_LISTS = ("SEIP_parameter.list", "CCIP_parameter.list")


def write_manifest(products: Path, fits_names: list[str], lists: list[str], pipeline: str = "",
                   run_params: bool = False, tables: tuple[str, ...] = ()) -> Path:
    ous = "unknown"
    root = ET.Element("piperesults", name=ous)
    o = ET.SubElement(root, "ous", name=ous)
    ET.SubElement(o, "casaversion", name=casa_env.versions().get("casatools", ""))
    ET.SubElement(o, "pipeline_version", name=pipeline or provenance.stamp())
    ET.SubElement(o, "procedure_name", name=RECIPE)
    ET.SubElement(o, "casa_cmdlog", name=naming.CASA_COMMANDS, level="N/A", ous=ous, package="N/A",
                  datatype="casa_commands", format="log")
    # provenance (issue 17): the replayable script and the run's parameters
    if (products / provenance.PIPESCRIPT).exists():
        ET.SubElement(o, "pipescript", name=provenance.PIPESCRIPT, level="N/A", ous=ous, package="N/A",
                      datatype="ccip_pipescript", format="py")
    if run_params:
        ET.SubElement(o, "run_params", name="run_params.json", level="N/A", ous=ous, package="N/A",
                      datatype="run_params", format="json")
    for f in fits_names:
        ET.SubElement(o, "image", name=f, imtype="target", manualstring="N/A")
    for p in lists:  # the lists as used; the archive's original of a changed one marked so
        if p.endswith(provenance.ORIGINAL_SUFFIX):
            ET.SubElement(o, "parameter_list", name=p, origin="archive")
        else:
            ET.SubElement(o, "parameter_list", name=p)
    for t in tables:  # not in NRAO's manifest: the Stokes analysis as a table (ECSV)
        ET.SubElement(o, "analysis_table", name=t, datatype="stokes_analysis", format="ecsv")
    text = xml.dom.minidom.parseString(ET.tostring(root)).toprettyxml(indent="  ")
    out = products / "pipeline_manifest.xml"
    out.write_text(text)
    return out


def _made_by(r: ImagingResult) -> str:
    """The versions that made a plane, for its FITS HISTORY: the imaging's and this export's."""
    return f"{r.pipeline or 'unknown'} (imaging), {provenance.stamp()} (export)"


def _vlass_header(rj: bool, pol: str, fname: str) -> dict:
    """The keywords export sets on a FITS file (the others come from the image's miscinfo)."""
    return {"VLASSRJ": rj, "VLASSPL": pol, "VLASSITY": image_type(fname)}


def export_products(tree: RunTree, fan: FanIn, vis_rel: str, workers: int = 1) -> dict:
    stage = tree.working / "export_staging"
    remove(stage)
    stage.mkdir()
    keep_of = fan.keep_of()
    span = msinfo.observation_span(tree.abs(vis_rel))
    for note in span.notes:
        log.warning("%s: %s", vis_rel, note)
    t0, t1, mid, site = span.start_mjd, span.end_mjd, span.mid_mjd, (span.lon_deg, span.lat_deg)
    ok = sorted((r for r in fan.results if r.status == "ok"), key=lambda r: r.target.reffreq_hz)
    kept_beams = [r.beam.to_json() for r in ok if keep_of.get(r.group, True) and r.beam]
    target = combeam.common_beam(kept_beams or [r.beam.to_json() for r in ok if r.beam])
    Casa(tree.working, "export").tool("ia.commonbeam", nplanes=len(kept_beams), result=target)
    fits_names, com_names, com_skipped = [], [], []
    # the planes are independent: ``workers`` of them at once, each in its own process
    for r, (done, plane) in zip(ok, groupworkers.parallel_map(
            export_plane, [(tree, r.to_json(), stage, target, t0, t1, mid, site, not keep_of.get(r.group, True))
                            for r in ok],
            workers)):
        if not done:
            raise groupworkers.failure(plane, f"export of spw group {r.group}: {plane}")
        fits_names += plane["fits"]
        com_names += plane["com"]
        com_skipped += plane["com_skipped"]
    lists = _provenance(tree, stage, ok)
    shutil.copy2(tree.working / naming.CASA_COMMANDS, stage / naming.CASA_COMMANDS)
    tables = _analysis_tables(tree, stage)
    write_manifest(stage, fits_names, lists, read_json(tree.run_params_json, {}).get("pipeline", ""),
                   tree.run_params_json.exists(), tables)
    products = tree.products
    products.mkdir(parents=True, exist_ok=True)
    for old in list(products.glob("*.fits")) + [products / "pipeline_manifest.xml", products / naming.ANALYSIS_TABLE,
                                                products / ("CCIP_parameter.list" + provenance.ORIGINAL_SUFFIX)]:
        remove(old)
    for f in stage.iterdir():
        dst = products / f.name
        remove(dst)
        shutil.move(str(f), str(dst))
    remove(stage)
    out = {"fits": fits_names, "com": com_names, "com_skipped": com_skipped, "common_beam": target,
           "manifest": "products/pipeline_manifest.xml", "mid_mjd": mid,
           "observation": span.to_json(), "archive_notes": [f"observation times: {n}" for n in span.notes]}
    write_json(tree.stage_data("export"), out)
    return out


def _analysis_tables(tree: RunTree, stage: Path) -> tuple[str, ...]:
    """Stage 11's ECSV table, delivered with the FITS (absent if the analysis did not run)."""
    src = tree.working / naming.ANALYSIS_TABLE
    if not src.exists():
        log.warning("%s is missing: no analysis table delivered", src.name)
        return ()
    shutil.copy2(src, stage / src.name)
    return (src.name,)


def export_plane(tree: RunTree, result: dict, stage: Path, target: dict, t0: float, t1: float, mid: float,
                 site: tuple[float, float], rj: bool) -> dict:
    """One plane's IQU and V FITS of its pbcor and rms cutouts, and its ``.com`` pair, into ``stage``
    (the plane's ImagingResult as JSON: it travels to a worker process)."""
    r = ImagingResult.from_json(result)
    casa = Casa(tree.working, f"export.{r.label}")
    pk, rms = r.qa.get("VLASSPK"), r.qa.get("VLASSRMS")
    fits_names, com_names, com_skipped = [], [], []
    for kind in ("image_pbcor_subim", "rms_subim"):
        src = tree.abs(r.images[kind])
        for pol in naming.STOKES_SPLIT:
            split = stage / naming.split_stokes(src.name, pol)
            casa("imsubimage", imagename=str(src), outfile=str(split), stokes=pol, dropdeg=False, overwrite=True)
            casaimage.update_miscinfo(split, VLASSPL=pol, VLASSPK=pk, VLASSRMS=rms, VLASSRJ=rj)
            fname = naming.exported(src.name, pol).format()
            casa("exportfits", imagename=str(split), fitsimage=str(stage / fname), overwrite=True,
                 stokeslast=True)
            remove(split)
            fix_header(stage / fname, t0, t1, _vlass_header(rj, pol, fname), _made_by(r))
            correct_position(stage / fname, mid, site)
            add_checksums(stage / fname)
            fits_names.append(fname)
    try:
        com_names += _com_pair(tree, r, stage, target, t0, t1, pk, rms, rj, casa)
    except Exception as e:  # noqa: BLE001 - one plane's .com failing must not lose the others (§9.4)
        log.warning("spw group %s: no .com images: %s", r.group, e)
        com_skipped.append({"group": r.group, "error": str(e)})
    return {"fits": fits_names, "com": com_names, "com_skipped": com_skipped}


def _provenance(tree: RunTree, stage: Path, ok: list[ImagingResult]) -> list[str]:
    """The parameter lists as used (the CCIP list with the run's parameters merged in, the
    archive's original beside it when they changed it) and the replayable script, into ``stage``;
    returns the lists' names for the manifest."""
    run_params = read_json(tree.run_params_json, {})
    names = []
    for p in PARAMETER_LISTS:
        over = provenance.run_overrides(run_params.get("params") or {}) if p == "CCIP_parameter.list" else {}
        if over:
            orig = p + provenance.ORIGINAL_SUFFIX
            shutil.copy2(tree.working / p, stage / orig)
            (stage / p).write_text(provenance.used_parameter_list((tree.working / p).read_text(), over, orig))
            names += [p, orig]
        else:
            shutil.copy2(tree.working / p, stage / p)
            names.append(p)
    if run_params.get("field_id"):
        (stage / provenance.PIPESCRIPT).write_text(provenance.pipescript(run_params, [r.group for r in ok]))
    return names


def _com_pair(tree: RunTree, r: ImagingResult, stage: Path, target: dict, t0: float, t1: float,
              pk, rms, rj: bool, casa: Casa) -> list[str]:
    """The plane's IQU and V ``.com`` FITS, from its IQUV CASA cutout and its corrected IQU FITS."""
    from astropy.io import fits

    src = tree.abs(r.images["image_pbcor_subim"])
    iqu_fits = stage / naming.exported(src.name, "IQU").format()
    with fits.open(iqu_fits) as h:
        crval = (float(h[0].header["CRVAL1"]), float(h[0].header["CRVAL2"]))
    names = {pol: naming.common_beam(naming.exported(src.name, pol).format()) for pol in naming.STOKES_SPLIT}
    images, history = combeam.make_com(src, crval, target, stage, names["IQU"] + ".im", names["V"] + ".im")
    casa.tool("ia.convolve2d/ia.regrid/ia.subimage", imagename=str(src), steps=history)
    out = []
    vlass = {k: v for k, v in casaimage.miscinfo(src).items() if k.startswith("VLASS")}  # all of makeimages'
    for pol, im in zip(naming.STOKES_SPLIT, images):
        casaimage.update_miscinfo(im, **{**vlass, "VLASSPL": pol, "VLASSPK": pk, "VLASSRMS": rms, "VLASSRJ": rj})
        with casaimage.opened(im) as ia:
            ia.tofits(str(stage / names[pol]), stokeslast=True, overwrite=True)
        casa.tool("ia.tofits", imagename=str(im), fitsimage=names[pol], stokeslast=True)
        remove(im)
        fix_header(stage / names[pol], t0, t1, _vlass_header(rj, pol, names[pol]), _made_by(r))
        with fits.open(stage / names[pol], mode="update") as h:
            for line in history:
                h[0].header.add_history(line)
        add_checksums(stage / names[pol])
        out.append(names[pol])
    return out
