"""QA scores (0..1) of the stages, as NRAO computes them where it has a rule (spec §4.1), else
a stated ccip rule. Each score is a dict ``{score, metric, message, applies_to}``; a stage's
score is the minimum of its sub-scores (NRAO's pipelineqa convention). The weblog colours them
as NRAO's: red < 0.33 ≤ yellow < 0.66 ≤ blue < 0.9 ≤ green.

- :func:`makeimages_scores`: a failed target scores 0.34 ("Cleaning failure", NRAO's makeimages
  rule for a PipelineException in one target), and the VLASS-cube summary score is
  kept/imaged planes with "N of M imaged planes are rejected.";
- :func:`flagging_score`: NRAO's ``score_total_data_flagged_vla`` of the newly flagged fraction
  (≤ 5 %: 1; 5-75 %: 1 → 0.5; 75-100 %: 0.5 → 0);
- :func:`box_flag_score`: the flagged fraction of each spw group inside the 1 deg² box (stage 6),
  the same NRAO curve applied to the group's total fraction; a skipped (100 % flagged) or
  rejected group 0.5, a warning (ccip's rule; NRAO logs a warning);
- :func:`rms_scores`: ccip's rule for the plane noise against the expected thermal noise
  (:mod:`.thermal`): ratio ≤ 1.5 → 1, falling linearly to 0.34 at ratio 5 and below that beyond.
"""
from __future__ import annotations

FAILED_TARGET = 0.34  # NRAO makeimages: a target whose imaging raised
SKIPPED_GROUP = 0.5  # ccip: a group not imaged because it is (nearly) all flagged: a warning


def score(value: float | None, metric: str, message: str, applies_to: str = "") -> dict:
    v = None if value is None else round(max(0.0, min(1.0, float(value))), 4)
    return {"score": v, "metric": metric, "message": message, "applies_to": applies_to}


def linear_score(x: float, x1: float, x2: float, y1: float, y2: float) -> float:
    """NRAO's scorecalculator.linear_score: y1 at x1 to y2 at x2, clipped to [min, max](y1, y2)."""
    y = y1 + (x - x1) * (y2 - y1) / (x2 - x1)
    return max(min(y1, y2), min(max(y1, y2), y))


def overall(scores: list[dict]) -> float | None:
    vals = [s["score"] for s in scores if s.get("score") is not None]
    return min(vals) if vals else None


def makeimages_scores(labels: list[str], failed: list[str], planes: list[dict]) -> list[dict]:
    """Per target (failed: 0.34, imaged: 1.0) and the plane summary (kept/imaged)."""
    out = [score(FAILED_TARGET, "cleaning", "Cleaning failure", lab) if lab in failed
           else score(1.0, "cleaning", "imaged", lab) for lab in labels]
    if planes:
        n, rejected = len(planes), sum(1 for p in planes if not p["keep"])
        out.append(score((n - rejected) / n, "plane_rejection", f"{rejected} of {n} imaged planes are rejected."))
    return out


def flagging_score(frac: float, what: str = "data", applies_to: str = "") -> dict:
    y = linear_score(frac, 0.75, 1.0, 0.5, 0.0) if frac > 0.75 else linear_score(frac, 0.05, 0.75, 1.0, 0.5)
    return score(y, "score_total_data_flagged_vla", f"{100 * frac:.2f}% of {what} was flagged", applies_to)


def box_flag_scores(flagpct: dict[str, float], skipped: list[str], rejected: list[str]) -> list[dict]:
    """Stage 6: each group's flagged fraction in the 1 deg² box; a skipped or rejected group scores
    0.5 (ccip's rule: a warning, as NRAO logs one; the stage did what it should)."""
    out = [flagging_score(f, f"spw group {g} in the 1 deg² box", g) for g, f in flagpct.items()]
    out += [score(SKIPPED_GROUP, "group_skipped", f"spw group {g} is 100% flagged: not imaged", g) for g in skipped]
    out += [score(SKIPPED_GROUP, "group_rejected", f"spw group {g}: too many fields > 90% flagged (PIPE-1800)", g)
            for g in rejected]
    return out


def rms_scores(ratios: dict[str, float | None]) -> list[dict]:
    """Per plane: measured Stokes-V noise / expected thermal noise (ccip's rule, see module doc)."""
    out = []
    for g, r in ratios.items():
        if r is None:
            out.append(score(None, "rms_vs_thermal", "no expected thermal noise", g))
            continue
        y = 1.0 if r <= 1.5 else linear_score(r, 1.5, 5.0, 1.0, 0.34) if r <= 5 else 0.34 * 5 / r
        out.append(score(y, "rms_vs_thermal", f"plane noise is {r:.2f} x the expected thermal noise", g))
    return out
