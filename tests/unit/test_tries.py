"""Tries of one spw group kept apart (ccip_ops.tries, makeimages.image_group, fanin.collect), with
CASA replaced by a fake tclean that writes the product folders: an earlier try that still runs when
a retry starts neither overwrites the retry's images nor gets its result trusted."""
from __future__ import annotations

import pytest

from ccip_ops import fanin, tries
from ccip_ops.model import ImagingResult, ImagingTarget
from ccip_ops.runtree import RunTree, write_json
from ccip_ops.stages import makeimages

KINDS = ("image", "residual", "psf", "pb", "model", "sumwt", "weight")


def _target(label="spw2_3", group="2,3"):
    return ImagingTarget(group=group, spws=(2, 3), label=label, imagename=f"s7_0.IMG.{label}", reffreq_hz=3e9,
                         reffreq="3.0GHz", imsize=(64, 64), cell="5arcsec", phasecenter="J2000 0h0m0s 0d0m0s",
                         field_ids=(0,), vis="working/x.ms", masks=("pb",), flagpct=0.0)


class FakeCasa:
    """tclean writes every product of its imagename, marked with the try that wrote it; ``hook`` runs
    before the call (to start another try in the middle of this one)."""

    hook = None
    die_at = None  # the n-th tclean call of the try never returns (its task killed)
    instances = []  # every Casa a try made, in order

    def __init__(self, w, label):
        self.calls = []
        FakeCasa.instances.append(self)

    def __call__(self, task, imagename=None, **kw):
        self.calls.append(task)
        if task == "tclean" and FakeCasa.die_at == self.calls.count("tclean"):
            FakeCasa.die_at = None
            raise Killed(imagename)
        if FakeCasa.hook:
            h, FakeCasa.hook = FakeCasa.hook, None
            h()
        if task != "tclean":  # e.g. the thermal-noise estimate's flagdata summary: no images
            return None
        for k in KINDS:
            d = f"{imagename}.{k}.tt0"
            __import__("os").makedirs(d, exist_ok=True)
            open(f"{d}/who", "w").write(FakeCasa.who)
        __import__("os").makedirs(f"{imagename}.mask", exist_ok=True)

    def records(self):
        return [{"task": c, "who": FakeCasa.who} for c in self.calls]


class Killed(BaseException):
    """What a SIGTERM from the task's supervisor raises in it (Airflow's AirflowTaskTerminated is a
    BaseException too), or a SIGKILL: nothing of the try's own error handling runs."""


@pytest.fixture
def fake_casa(monkeypatch):
    monkeypatch.setattr(makeimages, "Casa", FakeCasa)
    monkeypatch.setattr(makeimages, "ensure_beams", lambda w, root: 0)
    monkeypatch.setattr(makeimages, "actual_bandwidth", lambda casa, vis, spws: 1.0)
    monkeypatch.setattr(makeimages.H, "tclean_args", lambda t, vis, imagename, n, mask: {"imagename": imagename})
    monkeypatch.setattr(makeimages.H, "vlass_keywords", lambda t, bw: {"VLASSBW": bw, "VLASSBWN": 1})
    monkeypatch.setattr(makeimages.casaimage, "update_miscinfo", lambda p, **kw: None)
    monkeypatch.setattr(makeimages.casaimage, "beam", lambda p: None)
    FakeCasa.hook = None
    FakeCasa.die_at = None
    FakeCasa.instances = []


def _run(tree, t, n):
    FakeCasa.who = f"try{n}"
    return makeimages.image_group(tree, t, try_number=n)


def test_a_zombie_try_cannot_overwrite_the_retry(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    out = {}

    def retry_starts():  # try 1 is thought dead; try 2 runs to the end while try 1 still works
        out["r2"] = _run(tree, t, 2)
        FakeCasa.who = "try1"

    FakeCasa.hook = retry_starts
    with pytest.raises(tries.SupersededTryError, match="superseded by try 2"):
        _run(tree, t, 1)
    img = tree.working / t.names.name("image", 1)
    assert (img / "who").read_text() == "try2"
    assert not (tree.working / "tries" / t.label).exists()  # both tries' folders gone
    assert not tree.failure_json(t.label).exists()  # the zombie left the live try's record alone
    fan = fanin.collect(tree, [t], [out["r2"]])
    assert [r.label for r in fan.results] == [t.label] and fan.results[0].qa["try"]["number"] == 2


def test_a_superseded_try_stops_at_its_next_iteration_step(tmp_path, fake_casa):
    """A zombie that resumes mid-sequence (a thawed worker) runs no further tclean once a later try owns
    the group: at VLASS size that is hours of CASA not spent, and nothing of it written."""
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    FakeCasa.hook = lambda: tries.claim(tree, t.label, 2)  # during try 1's iter0 a retry takes over
    with pytest.raises(tries.SupersededTryError, match="superseded by try 2"):
        _run(tree, t, 1)
    assert FakeCasa.instances[0].calls == ["tclean"]  # iter0 only: none of iter1..iter3 ran
    assert not list(tree.working.glob(t.names.imagename + ".*"))
    # its completed iter0 stays for the live try 2, which resumes from it and then removes it
    assert (tree.working / "tries" / t.label / "try1" / tries.CHECKPOINT).exists()
    r2 = _run(tree, t, 2)
    assert r2.qa["try"]["resumed_from"] == {"try": 1, "after_iteration": 0}
    assert not (tree.working / "tries" / t.label).exists()


def test_a_result_of_an_earlier_try_is_not_trusted(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    r1 = _run(tree, t, 1)
    tries.claim(tree, t.label, 2)  # a retry has started (cleared by an operator, or re-delivered)
    fan_err = None
    with pytest.raises(Exception) as e:
        fanin.collect(tree, [t], [r1])
    fan_err = str(e.value)
    assert "not from the latest try 2" in fan_err
    ok, failed = fanin.imaging_outcomes(tree, [t])
    assert not ok and "from try 1" in failed[0].error


def test_a_try_writes_only_in_its_own_folder_until_it_promotes(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    seen = {}

    def look():
        seen["working"] = sorted(p.name for p in tree.working.glob(t.imagename + ".*"))
        seen["scratch"] = tries.scratch(tree, t.label, 1).is_dir()

    FakeCasa.hook = look
    r = _run(tree, t, 1)
    assert seen == {"working": [], "scratch": True}
    assert all((tree.root / p).exists() for p in r.images.values())
    assert tries.token_of(r.to_json()) == tries.owner(tree, t.label)["token"]


def test_results_from_before_tries_were_recorded_are_taken(tmp_path):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    write_json(tree.result_json(t.label), ImagingResult(target=t, status="ok").to_json())
    ok, failed = fanin.imaging_outcomes(tree, [t])
    assert list(ok) == [t.label] and not failed


def _steps_target():
    return ImagingTarget.from_json({**_target().to_json(), "masks": ["pb", "pb", "pb"]})


def _who(tree, t, kind, n):
    return (tree.working / t.names.name(kind, n) / "who").read_text()


def test_a_retry_resumes_after_the_last_completed_step_of_a_killed_try(tmp_path, fake_casa):
    """Issue 16: a try killed in its iter2 (a control-plane outage, a lost worker) leaves iter0 and
    iter1 complete; the retry copies them and runs iter2 and iter3 only, to the same products."""
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    FakeCasa.die_at = 3  # iter0, iter1 done; killed in iter2
    with pytest.raises(Killed):
        _run(tree, t, 1)
    s1 = tree.working / "tries" / t.label / "try1"
    assert (s1 / tries.CHECKPOINT).exists()
    FakeCasa.instances = []
    r2 = _run(tree, t, 2)
    assert FakeCasa.instances[0].calls.count("tclean") == 2  # iter2 and iter3
    assert r2.qa["try"]["resumed_from"] == {"try": 1, "after_iteration": 1}
    assert [c["who"] for c in r2.tclean_calls if c["task"] == "tclean"] == ["try1", "try1", "try2", "try2"]
    assert _who(tree, t, "image", 1) == "try1" and _who(tree, t, "image", 3) == "try2"
    # the same products as an uninterrupted run: iter0-2 keep image and residual, iter3 the full set
    kept = sorted(p.name for p in tree.working.glob(t.names.imagename + ".*"))
    for n in range(3):
        assert {k for k in KINDS if (tree.working / t.names.name(k, n)).exists()} == {"image", "residual"}, n
    assert all((tree.working / t.names.name(k, 3)).exists() for k in KINDS + ("mask",)), kept
    assert not (tree.working / "tries" / t.label).exists()  # the killed try's folder removed too
    fan = fanin.collect(tree, [t], [r2])
    assert fan.results[0].qa["try"]["number"] == 2


def test_a_checkpoint_of_another_target_or_version_is_not_resumed(tmp_path, fake_casa, monkeypatch):
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    FakeCasa.die_at = 3
    with pytest.raises(Killed):
        _run(tree, t, 1)
    changed = ImagingTarget.from_json({**t.to_json(), "imsize": [128, 128]})  # the operator changed it
    r2 = _run(tree, changed, 2)
    assert "resumed_from" not in r2.qa["try"]
    assert [c["who"] for c in r2.tclean_calls if c["task"] == "tclean"] == ["try2"] * 4
    FakeCasa.die_at = 3
    with pytest.raises(Killed):
        _run(tree, t, 3)
    monkeypatch.setattr(makeimages.provenance, "stamp", lambda: "ccip 9.9.9")  # cleared after an upgrade
    r4 = _run(tree, t, 4)
    assert "resumed_from" not in r4.qa["try"]
    assert [c["who"] for c in r4.tclean_calls if c["task"] == "tclean"] == ["try4"] * 4


def test_the_unfinished_step_of_the_earlier_try_is_not_taken(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    FakeCasa.die_at = 3
    with pytest.raises(Killed):
        _run(tree, t, 1)
    s1 = tree.working / "tries" / t.label / "try1"
    half = s1 / t.names.name("image", 2)  # iter2 half written when the try was killed
    half.mkdir(parents=True, exist_ok=True)
    (half / "who").write_text("half")
    r2 = _run(tree, t, 2)
    assert r2.qa["try"]["resumed_from"]["after_iteration"] == 1
    assert _who(tree, t, "image", 2) == "try2"


def test_a_checkpoint_that_moves_on_while_it_is_copied_is_copied_again(tmp_path, fake_casa, monkeypatch):
    """The earlier try still runs and completes a step during the copy: the copy is not taken as
    it is (it may mix two steps); the newer checkpoint is copied instead."""
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    FakeCasa.die_at = 4  # iter0-2 done
    with pytest.raises(Killed):
        _run(tree, t, 1)
    s1 = tree.working / "tries" / t.label / "try1"
    ck = __import__("json").loads((s1 / tries.CHECKPOINT).read_text())
    real_copy, seen = tries._copy_state, []

    def copy_then_the_earlier_try_moves_on(src, dst, step):
        real_copy(src, dst, step)
        seen.append(step)
        if len(seen) == 1:  # pretend it had been at step 1 when we looked, and wrote step 2 meanwhile
            write_json(s1 / tries.CHECKPOINT, {**ck, "at": ck["at"] + 1})

    monkeypatch.setattr(tries, "_copy_state", copy_then_the_earlier_try_moves_on)
    r2 = _run(tree, t, 2)
    assert seen == [2, 2] and r2.qa["try"]["resumed_from"]["after_iteration"] == 2


def test_a_try_that_finished_but_was_not_recorded_is_taken_not_redone(tmp_path, fake_casa, monkeypatch):
    """Its task token expired in an outage before it reported: the work is done, the retry takes it
    (with its own token, so collect trusts it); not when an image is gone or the version differs."""
    tree = RunTree(tmp_path / "run").make()
    t = _steps_target()
    r1 = _run(tree, t, 1)
    FakeCasa.instances = []
    r2 = _run(tree, t, 2)
    assert not FakeCasa.instances  # no CASA at all
    assert r2.qa["try"]["number"] == 2 and r2.qa["try"]["adopted_from"]["try"] == 1
    assert r2.images == r1.images and _who(tree, t, "image", 3) == "try1"
    assert fanin.collect(tree, [t], [r2]).results[0].qa["try"]["number"] == 2
    # an image of it gone: imaged again
    __import__("shutil").rmtree(tree.abs(r2.images["psf"]))
    r3 = _run(tree, t, 3)
    assert "adopted_from" not in r3.qa["try"] and _who(tree, t, "image", 3) == "try3"
    # another pipeline version: imaged again
    monkeypatch.setattr(makeimages.provenance, "stamp", lambda: "ccip 9.9.9")
    r4 = _run(tree, t, 4)
    assert "adopted_from" not in r4.qa["try"] and _who(tree, t, "image", 3) == "try4"
