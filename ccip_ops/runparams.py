"""A run's parameters: one JSON-schema definition for the trigger form, the first task and ``ccip run``.

The DAG builds its trigger form (``Param``) from :data:`SCHEMAS`; the first task and ``ccip run``
check the run's values with :func:`check` (a run can be created by other means than the form),
which returns the typed :class:`RunParams` recorded in ``products/run_params.json``. The check is
stricter than a JSON-schema validator on its own: a ``pattern`` must match the whole string with
ASCII digits (no trailing newline, no other scripts' digits), an ``integer`` is an int (not
``512.0``, not ``true``), spw groups are distinct, and ``imsize``/``cell`` obey the same rules as in
the parameter lists (:mod:`ccip_ops.listvalues`). The
operators' fault-injection rule (:func:`fault_injected`) lives here too, so that the DAG and the
serial runner fail the same groups. No Airflow import here.
"""
from __future__ import annotations

from . import listvalues
from .exceptions import InputError
from .model import ImagingTarget, RunParams
from .naming import FIELD_ID_PATTERN, SPW_GROUP_PATTERN

SCHEMAS: dict[str, dict] = {
    "field_id": {
        "type": "string", "pattern": FIELD_ID_PATTERN, "title": "VLASS field id",
        "description": "The VLASS tile and phase-centre token of the field, which is also the name of its "
                       "folder in the archive: T<tile>t<tile>.J<hhmmss><+|-><ddmmss>, e.g. T10t02.J005000-023000"},
    "spw_groups": {
        "type": ["null", "array"], "items": {"type": "string", "pattern": SPW_GROUP_PATTERN}, "minItems": 1,
        "uniqueItems": True, "maxItems": 64,
        "title": "spw groups (optional)",
        "description": "Override the spw groups of CCIP_parameter.list: one group per image plane, each "
                       "comma-separated spw ids (one group per line in the form, e.g. 2,3 then 4,5; "
                       "[\"2,3\", \"4,5\"] in a run's JSON conf). Leave empty to use the list."},
    "imaging_overrides": {
        "type": "object", "additionalProperties": False, "title": "imaging overrides (optional)",
        "properties": {"imsize": {"type": "integer", "minimum": 64, "maximum": 16384},
                       "cell": {"type": "string", "pattern": r"^[0-9]*\.?[0-9]+arcsec$"},
                       "robust": {"type": "number", "minimum": -2, "maximum": 2},
                       "nsigma": {"type": "number", "minimum": 0, "maximum": 100},
                       "niter": {"type": "integer", "minimum": 0, "maximum": 1000000},
                       "cycleniter": {"type": "integer", "minimum": 1, "maximum": 100000}},
        "description": "tclean parameters that override the VLASS heuristics and CCIP_parameter.list, "
                       "e.g. {\"imsize\": 512, \"cell\": \"2.0arcsec\", \"robust\": 1.0, \"nsigma\": 3}"},
    "fault_groups": {
        "type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 64,
        "title": "fault injection (operators' drills)",
        "description": "spw groups (e.g. \"2,3\") whose imaging task fails on its first try, without "
                       "retries, so that operators can practise clearing a failed group. Leave empty."},
}
DEFAULTS = {"spw_groups": None, "imaging_overrides": {}, "fault_groups": []}


def _validator(schema: dict):
    """A Draft 2020-12 validator with whole-string ASCII patterns and ints that are ints."""
    import re

    import jsonschema
    from jsonschema import validators

    base = jsonschema.Draft202012Validator

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not re.fullmatch(patrn.lstrip("^").rstrip("$"), instance,
                                                                       re.ASCII):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _c, v: isinstance(v, int) and not isinstance(v, bool))
    cls = validators.extend(base, {"pattern": pattern}, type_checker=checker)
    return cls(schema)


def check(params: dict) -> RunParams:
    """Validate a run's parameters against :data:`SCHEMAS`; raise InputError naming the parameter."""
    import jsonschema

    if params is not None and not isinstance(params, dict):
        raise InputError(f"run parameters must be a JSON object, got {type(params).__name__}")
    out = {**DEFAULTS, **{k: v for k, v in (params or {}).items() if k in SCHEMAS}}
    unknown = sorted(set(params or {}) - set(SCHEMAS))
    if unknown:
        raise InputError(f"unknown run parameter(s) {unknown}; known: {sorted(SCHEMAS)}")
    for k, schema in SCHEMAS.items():
        if k not in out:
            raise InputError(f"run parameter {k!r} is required")
        try:
            err = jsonschema.exceptions.best_match(_validator(schema).iter_errors(out[k]))
        except RecursionError:
            raise InputError(f"run parameter {k!r} is nested too deeply") from None
        if err is not None:
            rule = err.message if len(err.message) <= 300 else \
                f"breaks the schema's {err.validator!r} rule ({str(err.validator_value)[:100]})"
            where = "".join(f"[{p!r}]" for p in err.absolute_path)
            raise InputError(f"run parameter {k!r}{where} = {repr(err.instance)[:200]} is invalid: {rule}")
    if out["spw_groups"] is not None:
        listvalues.spw_groups(out["spw_groups"], "run parameter 'spw_groups'")
    ov = out["imaging_overrides"] or {}
    if "imsize" in ov:
        listvalues.imsize(ov["imsize"], "run parameter 'imaging_overrides' imsize")
    if "cell" in ov:
        listvalues.cell(ov["cell"], "run parameter 'imaging_overrides' cell")
    return RunParams(field_id=out["field_id"], spw_groups=out["spw_groups"],
                     imaging_overrides=out["imaging_overrides"] or {}, fault_groups=out["fault_groups"] or ())


def fault_injected(params: RunParams, target: ImagingTarget, try_number: int = 1) -> bool:
    """An operator's drill fails the first try of the named groups only: a retry, or a clear of the
    group, runs for real."""
    return try_number <= 1 and (target.group in params.fault_groups or target.label in params.fault_groups)
