"""Check a BIDS dataset against what its paper says: counts, empty files, readable headers.

:func:`validate` counts subjects, sessions, and files and sessions per modality
(derivatives too, e.g. ``lesion_mask``) and compares them with expected numbers
from a JSON/YAML file or a preset; it lists zero-byte files, checks every
image (``check``: its header, that every voxel byte is stored, or a full decode;
the report says which ran), and runs the BIDS validator when it is installed
(the report says when and why it was skipped).

An expect file (JSON or YAML)::

    subjects: 230
    sessions: 902
    modalities:
      T1w: {files: 447, sessions: 444}
      lesion_mask: {files: 228}

Example:
    >>> from brrrr.ingest.validate import validate
    >>> report = validate("ds004884", expect="ds004884")  # doctest: +SKIP
    >>> print(report.to_text())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from brrrr.ingest.errors import BidsError
from brrrr.ingest.header import Check, read_header
from brrrr.ingest.index import index_bids

__all__ = [
    "PRESETS",
    "CountCheck",
    "Expectations",
    "ModalityExpectation",
    "ValidationReport",
    "ValidatorRun",
    "validate",
]

_VALIDATOR_INSTALL = (
    "install the BIDS validator (`deno install -ERWN -g -n bids-validator jsr:@bids/validator` "
    "or `npm install -g bids-validator`) to run it"
)


@dataclass(frozen=True)
class ModalityExpectation:
    """Expected counts of one modality (``None``: not checked)."""

    files: int | None = None
    sessions: int | None = None


@dataclass(frozen=True)
class Expectations:
    """Expected counts of a dataset.

    Attributes:
        subjects: Subjects with at least one raw image.
        sessions: (subject, session) pairs with at least one raw image.
        modalities: By modality key: ``T1w``, ``bold``, or ``lesion_mask`` for a
            derivative ``desc-lesion_mask``.
        name: Where these numbers come from.
    """

    subjects: int | None = None
    sessions: int | None = None
    modalities: Mapping[str, ModalityExpectation] = field(default_factory=dict)
    name: str = "expectations"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, name: str = "expectations") -> Expectations:
        """Build from a parsed JSON/YAML mapping (see the module docs).

        Raises:
            ValueError: Unknown keys or non-integer counts.
        """
        unknown = set(raw) - {"subjects", "sessions", "modalities", "name"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; use subjects, sessions, modalities")
        modalities = {}
        for key, value in (raw.get("modalities") or {}).items():
            if isinstance(value, int):
                value = {"files": value}
            extra = set(value) - {"files", "sessions"}
            if extra:
                raise ValueError(f"modality {key!r}: unknown keys {sorted(extra)}")
            modalities[str(key)] = ModalityExpectation(
                files=_count(value.get("files")), sessions=_count(value.get("sessions"))
            )
        return cls(
            subjects=_count(raw.get("subjects")),
            sessions=_count(raw.get("sessions")),
            modalities=modalities,
            name=str(raw.get("name", name)),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Expectations:
        """Read a JSON or YAML expect file.

        Raises:
            BidsError: Unreadable or invalid.
        """
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
            if not isinstance(raw, Mapping):
                raise ValueError("the file must hold a mapping")
            return cls.from_mapping(raw, name=path.name)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise BidsError(f"invalid expect file: {exc}", path=path) from None


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"counts must be non-negative integers, got {value!r}")
    return value


#: Built-in expectations, by name.
PRESETS: dict[str, Expectations] = {
    # OpenNeuro ds004884, the Aphasia Recovery Cohort (numbers from the data paper).
    "ds004884": Expectations(
        subjects=230,
        sessions=902,
        modalities={
            "T1w": ModalityExpectation(files=447, sessions=444),
            "T2w": ModalityExpectation(files=441, sessions=440),
            "FLAIR": ModalityExpectation(files=235, sessions=233),
            "lesion_mask": ModalityExpectation(files=228),
        },
        name="OpenNeuro ds004884 (Aphasia Recovery Cohort)",
    ),
}


_CHECK_TEXT = {
    "none": "no image read",
    "header": "headers read; voxel data not checked",
    "size": "headers read, and every voxel byte the header declares is stored",
    "full": "every voxel decoded",
}


@dataclass(frozen=True)
class CountCheck:
    """One expected number against the one found."""

    name: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class ValidatorRun:
    """What happened with the BIDS validator.

    Attributes:
        status: ``"passed"``, ``"failed"`` (errors found), ``"skipped"`` or ``"error"`` (could not run).
        detail: Why it was skipped, or a summary of its findings.
        errors: Number of errors it reported.
        warnings: Number of warnings it reported.
    """

    status: Literal["passed", "failed", "skipped", "error"]
    detail: str
    errors: int = 0
    warnings: int = 0


@dataclass
class ValidationReport:
    """The outcome of :func:`validate`.

    Attributes:
        root: The dataset.
        counts: ``subjects``, ``sessions``, ``images``, and per modality ``files`` / ``sessions``.
        checks: Expected against found (empty without expectations).
        zero_byte: Files of 0 bytes (relative paths).
        check: The image check that ran: ``"header"``, ``"size"`` or ``"full"`` (see
            :data:`brrrr.ingest.header.Check`), or ``"none"`` (``headers="none"``).
        unreadable: Images that failed the check, with the reason.
        validator: The BIDS validator's run.
        problems: Anything else that stopped a check, e.g. pybids unable to index the dataset.
    """

    root: str
    counts: dict[str, Any]
    checks: list[CountCheck] = field(default_factory=list)
    zero_byte: list[str] = field(default_factory=list)
    check: Check | Literal["none"] = "header"
    unreadable: list[dict[str, str]] = field(default_factory=list)
    validator: ValidatorRun = field(default_factory=lambda: ValidatorRun("skipped", "not run"))
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No count differs, no empty or unreadable file, and the validator did not fail."""
        return (
            all(c.ok for c in self.checks)
            and not self.zero_byte
            and not self.unreadable
            and not self.problems
            and self.validator.status != "failed"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["checks"] = [asdict(c) | {"ok": c.ok} for c in self.checks]
        out["ok"] = self.ok
        return out

    def to_text(self) -> str:
        """A human-readable report."""
        lines = [f"dataset: {self.root}"]
        lines += [f"problem: {p}" for p in self.problems]
        c = self.counts
        if c:
            lines.append(
                f"found: {c['subjects']} subjects, {c['sessions']} sessions, {c['images']} images"
            )
        for name, m in c.get("modalities", {}).items():
            lines.append(f"  {name:<16} {m['files']:>6} files over {m['sessions']:>5} sessions")
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"{mark} {check.name}: expected {check.expected}, found {check.actual}")
        lines.append(f"zero-byte files: {len(self.zero_byte)}")
        lines += [f"  {p}" for p in self.zero_byte]
        lines.append(f"image check: {self.check} ({_CHECK_TEXT[self.check]})")
        lines.append(f"unreadable images: {len(self.unreadable)}")
        lines += [f"  {u['path']}: {u['reason']}" for u in self.unreadable]
        lines.append(f"BIDS validator: {self.validator.status}: {self.validator.detail}")
        lines.append("result: " + ("OK" if self.ok else "PROBLEMS FOUND"))
        return "\n".join(lines)


def _zero_byte_files(root: Path) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            try:
                empty = path.stat().st_size == 0
            except OSError:
                empty = False  # a broken link: the header check reports images; others are not data
            if empty:
                found.append(path.relative_to(root).as_posix())
    return found


def _run_validator(root: Path, mode: Literal["auto", "skip"], timeout_s: float) -> ValidatorRun:
    if mode == "skip":
        return ValidatorRun("skipped", "disabled by the caller")
    exe = shutil.which("bids-validator")
    if exe is None:
        return ValidatorRun("skipped", f"bids-validator is not on PATH; {_VALIDATOR_INSTALL}")
    try:
        done = subprocess.run(
            [exe, "--json", str(root)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        payload = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        return ValidatorRun("error", f"bids-validator did not finish within {timeout_s:g} s")
    except (OSError, json.JSONDecodeError) as exc:
        return ValidatorRun("error", f"cannot run or parse bids-validator ({exe}): {exc}")
    issues = payload.get("issues", {}) if isinstance(payload, dict) else {}
    if "errors" in issues:  # the legacy (node) validator
        errors, warnings = len(issues["errors"]), len(issues.get("warnings", []))
        codes = [str(i.get("key", i.get("code", "?"))) for i in issues["errors"]]
    else:  # the schema (deno) validator
        listed = issues.get("issues", [])
        errors = sum(1 for i in listed if i.get("severity") == "error")
        warnings = sum(1 for i in listed if i.get("severity") == "warning")
        codes = [str(i.get("code", "?")) for i in listed if i.get("severity") == "error"]
    if errors:
        shown = ", ".join(sorted(set(codes))[:10])
        return ValidatorRun(
            "failed", f"{errors} errors ({shown}), {warnings} warnings", errors, warnings
        )
    return ValidatorRun("passed", f"no errors, {warnings} warnings", 0, warnings)


def validate(
    root: str | os.PathLike[str],
    *,
    expect: Expectations | str | os.PathLike[str] | None = None,
    headers: Literal["all", "none"] = "all",
    check: Check = "header",
    validator: Literal["auto", "skip"] = "auto",
    validator_timeout_s: float = 1800.0,
    progress: bool = True,
) -> ValidationReport:
    """Validate a BIDS dataset: counts against expectations, empty files, headers, BIDS validator.

    Args:
        root: Dataset root.
        expect: :class:`Expectations`, a preset name from :data:`PRESETS`
            (``"ds004884"``), or a JSON/YAML expect file; ``None`` only reports counts.
        headers: ``"all"`` checks every image; ``"none"`` reads no image.
        check: How each image is checked when ``headers="all"``: ``"header"``
            (its header only; a file cut inside its voxel data passes), ``"size"``
            (also that the file stores every voxel byte the header declares: a
            ``stat`` for ``.nii``/``.mgh``, one inflate without keeping the data for
            ``.nii.gz``/``.mgz``, which also verifies the gzip CRC) or ``"full"``
            (also decode every voxel, as :func:`brrrr.core.load_volume` does).
        validator: ``"auto"`` runs ``bids-validator`` when it is on ``PATH``; ``"skip"`` does not.
        validator_timeout_s: Longest the validator may run.
        progress: Show a progress bar.

    Returns:
        The :class:`ValidationReport`; ``report.ok`` is True when nothing is wrong.

    Raises:
        BidsError: ``root`` is not a BIDS dataset, or the expect file is invalid.
        ValueError: ``check`` is unknown, or other than ``"header"`` with ``headers="none"``.
    """
    from tqdm.auto import tqdm

    if check not in ("header", "size", "full"):
        raise ValueError(f"check must be 'header', 'size' or 'full', got {check!r}")
    if headers == "none" and check != "header":
        raise ValueError(f"check={check!r} reads images; it needs headers='all'")
    ran: Check | Literal["none"] = check if headers == "all" else "none"

    if isinstance(expect, str) and expect in PRESETS:
        expectations: Expectations | None = PRESETS[expect]
    elif isinstance(expect, str | os.PathLike):
        expectations = Expectations.from_file(expect)
    else:
        expectations = expect
    if not Path(root).is_dir():
        raise BidsError("not a folder; give the root of a BIDS dataset", path=root)
    zero_byte = _zero_byte_files(Path(root))
    try:
        index = index_bids(root, include_derivatives=True)
    except BidsError as exc:
        if not (Path(root) / "dataset_description.json").is_file():
            raise
        # An unindexable dataset is a finding, not a crash: report it with what was checked.
        report = ValidationReport(root=str(root), counts={}, check="none", zero_byte=zero_byte)
        report.problems.append(exc.message)
        report.validator = _run_validator(Path(root), validator, validator_timeout_s)
        return report
    raw = [it for it in index.items if it.pipeline is None]
    subjects = {it.entities["subject"] for it in raw if "subject" in it.entities}
    sessions = {(it.entities.get("subject"), it.entities.get("session")) for it in raw}
    files: dict[str, int] = defaultdict(int)
    modality_sessions: dict[str, set[tuple[str | None, str | None]]] = defaultdict(set)
    for it in index.items:
        files[it.modality] += 1
        modality_sessions[it.modality].add((it.entities.get("subject"), it.entities.get("session")))
    counts: dict[str, Any] = {
        "subjects": len(subjects),
        "sessions": len(sessions),
        "images": len(index.items),
        "participants_tsv_rows": len(index.phenotype),
        "modalities": {
            m: {"files": files[m], "sessions": len(modality_sessions[m])} for m in index.modalities
        },
    }
    report = ValidationReport(root=str(index.root), counts=counts, check=ran)
    if expectations is not None:
        if expectations.subjects is not None:
            report.checks.append(CountCheck("subjects", expectations.subjects, len(subjects)))
        if expectations.sessions is not None:
            report.checks.append(CountCheck("sessions", expectations.sessions, len(sessions)))
        for name, want in expectations.modalities.items():
            if want.files is not None:
                report.checks.append(CountCheck(f"{name} files", want.files, files.get(name, 0)))
            if want.sessions is not None:
                found = len(modality_sessions.get(name, ()))
                report.checks.append(CountCheck(f"{name} sessions", want.sessions, found))
    report.zero_byte = zero_byte
    if headers == "all":
        desc = f"checking images ({check})"
        for it in tqdm(index.items, desc=desc, unit="image", disable=not progress):
            try:
                read_header(it.path, check=check)
            except BidsError as exc:
                report.unreadable.append({"path": it.relpath, "reason": exc.message})
    report.validator = _run_validator(index.root, validator, validator_timeout_s)
    return report
