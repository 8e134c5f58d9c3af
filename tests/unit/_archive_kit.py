"""A complete archive folder for the input checks, without CASA: a PIMS folder, both parameter
lists (as the simulator writes them) and a small reimaging_resources.tgz holding the six resources
of spec §2.2. Each piece can be replaced to make one input bad."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

FID = "T10t02.J005000-023000"
PIMS = "VLASS2.1.sb1.eb1.58000.1"
VIS = PIMS + "_split.ms"
SEIP_IMG = "VLASS2.1.se.T10t02.J005000-023000.06.1.v1"
CCIP_IMG = "VLASS2.1.cc.T10t02.J005000-023000.06.1.v1"
COMMON = "phasecenter='J2000 00:50:00.000 -02.30.00.000'\nimsize=[320, 320]\ncell=['5.0arcsec']\n"
SEIP = f"imaging_mode='VLASS-SE-CONT-MOSAIC'\nimagename={SEIP_IMG!r}\n" + COMMON
CCIP = (f"imaging_mode='VLASS-SE-CUBE'\nimagename={CCIP_IMG!r}\n" + COMMON
        + "spw=['2,3,4,5', '6,7,8,9']\n")


def resource_names(prefix: str = "") -> list[str]:
    """Member files of a good tarball (``prefix`` './' as ``tar -C dir .`` writes them)."""
    return [prefix + n for n in (
        f"{VIS}.flagversions/FLAG_VERSION_LIST", f"{VIS}.flagversions/flags.statwt_1/table.dat",
        f"{VIS}.hifv_selfcal.s8_1.phase-self-cal.tbl/table.dat",
        f"s5_0.{SEIP_IMG}.I.iter1.model.tt0/table.dat",
        f"s4_0.{SEIP_IMG}.QLcatmask-tier1.mask/table.dat",
        f"s12_0.{SEIP_IMG}.combined-tier2.mask/table.dat")]


def write_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m, io.BytesIO(b"\0" * m.size) if m.isreg() else None)
            else:
                ti = tarfile.TarInfo(m[0])
                ti.size = len(m[1])
                tar.addfile(ti, io.BytesIO(m[1]))
    return path


def good_members(prefix: str = "") -> list:
    return [(n, b"x") for n in resource_names(prefix)]


def make_field(archive: Path, seip: str = SEIP, ccip: str = CCIP, members: list | None = None,
               fid: str = FID) -> Path:
    d = archive / fid
    (d / f"{PIMS}.ms" / "ANTENNA").mkdir(parents=True)
    (d / f"{PIMS}.ms" / "table.dat").write_bytes(b"x")
    (d / f"{PIMS}.ms" / "ANTENNA" / "table.dat").write_bytes(b"x")
    (d / "SEIP_parameter.list").write_text(seip)
    (d / "CCIP_parameter.list").write_text(ccip)
    write_tar(d / "reimaging_resources.tgz", good_members() if members is None else members)
    return d


def snapshot(d: Path) -> list:
    return sorted((str(p.relative_to(d)), p.lstat().st_mtime_ns, p.lstat().st_size) for p in d.rglob("*"))
