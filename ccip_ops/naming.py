"""Every file and product name of a run, in one place (spec §2.2, §4.3, §5-§9).

A name is made here and nowhere else; :func:`parse_product` reads a product name back into its
parts, and ``tests/unit/test_naming.py`` round-trips every name, so the modules that write a
product and those that read it cannot drift apart.

The CCIP products of one spw group, with ``IMG`` the ``imagename`` of ``CCIP_parameter.list`` and
``g`` the group's label (``spw2_3`` for group ``2,3``)::

    s7_0.IMG.g.IQUV.iter<n>.<kind>[.tt0]            CASA images of makeimages (stage 7)
    s7_0.IMG.g.IQUV.iter3.image.pbcor.tt0[.rms]     pbcor (8), rms (9)
    <any of them>.subim                             cutouts (10)
    IMG.g.<IQU|V>.iter3.image.pbcor.tt0[.rms].subim.fits      exported FITS (12): stage prefix dropped
    IMG.g.<IQU|V>.iter3.image.pbcor.tt0.subim.com.fits        the common-beam set (12)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

# ---- the field and the run ------------------------------------------------------------------

# VLASS tile and phase-centre token, e.g. T10t02.J005000-023000 (DESIGN.md §3.1); names a folder, never a path
FIELD_ID_PATTERN = r"^T[0-9]{2}t[0-9]{2}\.J[0-9]{6}[+-][0-9]{6}$"
FIELD_ID_RE = re.compile(FIELD_ID_PATTERN)


def is_field_id(value) -> bool:
    return isinstance(value, str) and FIELD_ID_RE.fullmatch(value) is not None


def run_folder(run_id: str) -> str:
    """A run id as a folder name: Airflow run ids carry ':' and '+'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


# ---- the spw group ----------------------------------------------------------------------------

SPW_GROUP_PATTERN = r"^[0-9]+(,[0-9]+)*$"  # ASCII digits only (no '\d': it matches other scripts' digits)
LABEL_RE = re.compile(r"^spw[0-9]+(_[0-9]+)*$")


def group_label(group: str) -> str:
    """``"2,3,4,5"`` -> ``"spw2_3_4_5"``: names the mapped task and the group's files."""
    return "spw" + group.replace(",", "_")


def label_group(label: str) -> str:
    """The inverse of :func:`group_label`."""
    if not LABEL_RE.match(label):
        raise ValueError(f"{label!r} is not an spw group label such as 'spw2_3'")
    return label[3:].replace("_", ",")


# ---- stage prefixes ---------------------------------------------------------------------------

CCIP_IMAGING_STAGE = 7  # hif_makeimages is stage 7 of the CCIP recipe
RESTORE_STAGE = 4  # hifv_restorepims
SE_IMAGING_STAGE = 5  # SE-CONT recipe: the first makeimages (the selfcal model)
SE_TIER1_STAGE = 4  # SE-CONT: hifv_vlassmasking tier-1
SE_SELFCAL_STAGE = 8  # SE-CONT: hifv_selfcal
SE_TIER2_STAGE = 12  # SE-CONT: hifv_vlassmasking tier-2
STAGE_PREFIX_RE = re.compile(r"^s[0-9]+_[0-9]*\.")


def stage_prefix(stage: int) -> str:
    return f"s{stage}_0."


def strip_stage_prefix(name: str) -> str:
    return STAGE_PREFIX_RE.sub("", name)


# ---- CCIP products ----------------------------------------------------------------------------

FINAL_ITERATION = 3  # iter0 .. iter3 (spec §4.3)
STOKES_CASA = "IQUV"  # what tclean writes
STOKES_SPLIT = ("IQU", "V")  # what is exported
TAYLOR = "tt0"
# kinds of tclean product with a Taylor-term suffix, and those without one
TT_KINDS = ("image", "residual", "psf", "pb", "model", "sumwt", "weight", "image.pbcor", "image.residual.pbcor")
PLAIN_KINDS = ("mask", "cleanmask")
# the cutouts of stage 10, as result keys (spec §7.1) and their products
CUT_KINDS = ("image", "residual", "image_pbcor", "rms", "psf", "residual_pbcor", "pb")


@dataclass(frozen=True)
class ProductName:
    """The parts of a CCIP product name; :meth:`format` and :func:`parse_product` are inverses."""

    img: str  # imagename of CCIP_parameter.list
    label: str  # spw group label
    kind: str  # one of TT_KINDS or PLAIN_KINDS
    iteration: int = FINAL_ITERATION
    stokes: str = STOKES_CASA  # IQUV (CASA) or IQU / V (exported)
    prefix: str = stage_prefix(CCIP_IMAGING_STAGE)  # "" once exported
    rms: bool = False
    subim: bool = False
    com: bool = False
    fits: bool = False

    def format(self) -> str:
        s = f"{self.prefix}{self.img}.{self.label}.{self.stokes}.iter{self.iteration}.{self.kind}"
        if self.kind in TT_KINDS:
            s += f".{TAYLOR}"
        return s + ".rms" * self.rms + ".subim" * self.subim + ".com" * self.com + ".fits" * self.fits

    __str__ = format


_PRODUCT_RE = re.compile(
    r"^(?P<prefix>s[0-9]+_[0-9]*\.)?(?P<img>.+)\.(?P<label>spw[0-9]+(?:_[0-9]+)*)\.(?P<stokes>IQUV|IQU|V)"
    r"\.iter(?P<iteration>[0-9]+)\.(?P<kind>" + "|".join(re.escape(k) for k in sorted(TT_KINDS + PLAIN_KINDS,
                                                                                        key=len, reverse=True))
    + r")(?P<tt>\.tt0)?(?P<rms>\.rms)?(?P<subim>\.subim)?(?P<com>\.com)?(?P<fits>\.fits)?$")


def parse_product(name: str) -> ProductName:
    """A product name back into its parts; ValueError for anything :class:`ProductName` cannot make."""
    m = _PRODUCT_RE.match(name)
    if not m or (m["kind"] in TT_KINDS) != bool(m["tt"]):
        raise ValueError(f"{name!r} is not a CCIP product name")
    p = ProductName(img=m["img"], label=m["label"], kind=m["kind"], iteration=int(m["iteration"]),
                    stokes=m["stokes"], prefix=m["prefix"] or "", rms=bool(m["rms"]), subim=bool(m["subim"]),
                    com=bool(m["com"]), fits=bool(m["fits"]))
    if p.format() != name:
        raise ValueError(f"{name!r} is not a CCIP product name")
    return p


@dataclass(frozen=True)
class GroupNames:
    """The CASA image names of one spw group in ``working/``."""

    img: str
    label: str

    @property
    def imagename(self) -> str:
        """The group's image root R (ImagingTarget.imagename): every file of the group starts with it."""
        return f"{stage_prefix(CCIP_IMAGING_STAGE)}{self.img}.{self.label}"

    def iteration_root(self, n: int) -> str:
        """``R.IQUV.iter<n>``: tclean's ``imagename`` for iteration n."""
        return f"{self.imagename}.{STOKES_CASA}.iter{n}"

    def product(self, kind: str, n: int = FINAL_ITERATION, **flags) -> ProductName:
        return ProductName(img=self.img, label=self.label, kind=kind, iteration=n, **flags)

    def name(self, kind: str, n: int = FINAL_ITERATION, **flags) -> str:
        return self.product(kind, n, **flags).format()

    @property
    def image_pbcor(self) -> str:
        return self.name("image.pbcor")

    @property
    def residual_pbcor(self) -> str:
        return self.name("image.residual.pbcor")

    @property
    def rms(self) -> str:
        return self.name("image.pbcor", rms=True)


def group_names(imagename: str) -> GroupNames:
    """GroupNames from an image root R (``s7_0.IMG.spw2_3``)."""
    prefix = stage_prefix(CCIP_IMAGING_STAGE)
    m = re.match(r"^" + re.escape(prefix) + r"(?P<img>.+)\.(?P<label>spw[0-9]+(?:_[0-9]+)*)$", imagename)
    if not m:
        raise ValueError(f"{imagename!r} is not an spw group image root {prefix}<IMG>.spw<g>")
    return GroupNames(m["img"], m["label"])


def subim(name: str) -> str:
    """A stage-10 cutout of a CASA image."""
    return name + ".subim"


def exported(casa_name: str, stokes: str) -> ProductName:
    """The FITS product of a CASA cutout (IQUV) for ``stokes`` (IQU or V): stage prefix dropped."""
    return replace(parse_product(casa_name), stokes=stokes, prefix="", fits=True)


def split_stokes(casa_name: str, stokes: str) -> str:
    """The scratch CASA image holding the ``stokes`` planes of an IQUV image."""
    return replace(parse_product(casa_name), stokes=stokes).format()


def common_beam(fits_name: str) -> str:
    """The ``.com`` FITS of an exported FITS."""
    return replace(parse_product(fits_name), com=True).format()


# ---- the MS and the SE-CONT resources (spec §2.2) ---------------------------------------------

def split_vis(pims_root: str) -> str:
    """``<name>_split.ms``, the MS the transform stage makes of the PIMS ``<name>.ms``."""
    return f"{pims_root}_split.ms"


def ms_root(vis_name: str) -> str:
    """``<name>`` of a MeasurementSet ``<name>.ms`` (a name without ``.ms`` as it is)."""
    return vis_name.removesuffix(".ms")


def flag_template(vis_name: str) -> str:
    return f"{ms_root(vis_name)}.flagtargetstemplate.txt"


def flag_commands(vis_name: str) -> str:
    return f"{ms_root(vis_name)}.flagtargetscmds.txt"


def flagversions(vis_name: str) -> str:
    return f"{vis_name}.flagversions"


def se_image_root(seip_img: str, n: int) -> str:
    """tclean's imagename for iteration n of the SE-CONT Stokes-I imaging that made the selfcal model."""
    return f"{stage_prefix(SE_IMAGING_STAGE)}{seip_img}.I.iter{n}"


def se_model_root(seip_img: str) -> str:
    """The SE selfcal model images' root (``.model.tt0``/``.tt1`` follow)."""
    return se_image_root(seip_img, 1)


def se_tier1_mask(seip_img: str) -> str:
    return f"{stage_prefix(SE_TIER1_STAGE)}{seip_img}.QLcatmask-tier1.mask"


def se_second_mask(seip_img: str) -> str:
    return f"{stage_prefix(SE_TIER2_STAGE)}{seip_img}.secondmask.mask"


def se_tier2_mask(seip_img: str) -> str:
    return f"{stage_prefix(SE_TIER2_STAGE)}{seip_img}.combined-tier2.mask"


def se_selfcal_table(vis_name: str) -> str:
    return f"{vis_name}.hifv_selfcal.s{SE_SELFCAL_STAGE}_1.phase-self-cal.tbl"


def restore_root(seip_img: str) -> str:
    """restorepims' own iter0 root, under which the SE model is copied (spec §2.4 step 3)."""
    return f"{stage_prefix(RESTORE_STAGE)}{seip_img}.I.iter0"


def restore_tmp_root(seip_img: str) -> str:
    """Where restorepims keeps the wbawp=False PSF while the iter0 tclean runs (awproject modes)."""
    return f"{stage_prefix(RESTORE_STAGE)}{seip_img}.I.tmp"


def se_tmp_root(seip_img: str) -> str:
    """The SE-CONT imaging's holding name for the wbawp=False PSF (awproject modes)."""
    return f"{stage_prefix(SE_IMAGING_STAGE)}{seip_img}.I.tmp"


def cfcache(root_stage: int, seip_img: str, wbawp: bool) -> str:
    """A CF cache computed by a stage (awproject): the wide-band A-projection one or the ``wbawp=False`` one."""
    return f"{stage_prefix(root_stage)}{seip_img}.I.{'cfcache' if wbawp else 'cfcache_nowb'}"


def resource_patterns(vis_name: str, seip_img: str) -> dict[str, str]:
    """The six resources of ``reimaging_resources.tgz`` as NRAO's name patterns (spec §2.2)."""
    return {
        "flag_dir": flagversions(vis_name) + "*",
        "flag_version": flagversions(vis_name) + "/flags.statwt_1",
        "selfcal_table": vis_name + ".*.phase-self-cal.tbl*",
        "model_images": "s*_0." + seip_img + ".I.iter1.model*",
        "tier1_mask": "s*_0." + seip_img + ".QLcatmask-tier1.mask*",
        "tier2_mask": "s*_0." + seip_img + ".combined-tier2.mask*",
    }


# ---- logs and pages ---------------------------------------------------------------------------

def casa_log(stage: str) -> str:
    """One CASA log per stage (and per group): ``working/logs/<stage>.casa.log``."""
    return f"logs/{stage}.casa.log"


CASA_COMMANDS = "casa_commands.log"


def stage_page(number: int) -> str:
    return f"stage{number}.html"


def thumbnail(label: str, stokes: str) -> str:
    return f"thumbs/{label}_{stokes}.png"


ANALYSIS_TABLE = "stokes_analysis.ecsv"  # stage 11's per-plane, per-region results (products/, manifest)
