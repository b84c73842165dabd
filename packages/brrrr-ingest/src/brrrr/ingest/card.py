"""The dataset card (``README.md`` with YAML metadata) of a converted BIDS dataset.

License and citation come from ``dataset_description.json``; the body gives
counts per modality and per subject, the schema, and how to load the data.

Example:
    >>> from brrrr.ingest.card import license_id
    >>> license_id("CC0"), license_id("CC BY 4.0"), license_id("my own terms")
    ('cc0-1.0', 'cc-by-4.0', 'other')
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brrrr.core.files import atomic_write
from brrrr.ingest.index import BidsIndex
from brrrr.ingest.manifest import Manifest

__all__ = ["build_card", "license_id", "write_card"]

_HF_LICENSES = {
    "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "pddl", "odbl", "odc-by", "mit",
    "apache-2.0", "bsd-3-clause", "gpl-3.0", "unknown",
}  # fmt: skip
_ALIASES = {"cc0": "cc0-1.0", "pd": "pddl", "public-domain": "pddl", "odbl-1.0": "odbl"}


def license_id(bids_license: str | None) -> str:
    """The Hub's license id for a BIDS ``License`` value (``"other"`` when unknown)."""
    if not bids_license:
        return "unknown"
    key = "-".join(bids_license.strip().lower().replace("_", " ").split())
    key = _ALIASES.get(key, key)
    return key if key in _HF_LICENSES else "other"


def _size_category(rows: int) -> str:
    for bound, name in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K")):
        if rows < bound:
            return name
    return "100K<n<1M"


def _type_name(feature: Any) -> str:
    """A short name of a feature in the plain form of :mod:`brrrr.ingest.features`."""
    kind = feature.get("_type") if isinstance(feature, dict) else None
    if kind == "Nifti":
        return "Nifti (image bytes)"
    if kind == "Value":
        return str(feature["dtype"])
    if kind == "List":
        return f"list<{_type_name(feature['feature'])}>"
    if isinstance(feature, dict) and kind is None:
        return "struct<" + ", ".join(f"{k}: {_type_name(v)}" for k, v in feature.items()) + ">"
    return str(kind or type(feature).__name__)


def _citation(description: dict[str, Any]) -> str:
    authors = description.get("Authors") or []
    lines = ["@misc{dataset,", f"  title = {{{description.get('Name', 'BIDS dataset')}}},"]
    if authors:
        lines.append(f"  author = {{{' and '.join(map(str, authors))}}},")
    doi = str(description.get("DatasetDOI") or "")
    if doi:
        lines.append(f"  doi = {{{doi.removeprefix('doi:')}}},")
    lines.append("}")
    text = "\n".join(lines)
    parts = [f"```bibtex\n{text}\n```"]
    if description.get("HowToAcknowledge"):
        parts.append(
            f"How to acknowledge (from `dataset_description.json`): {description['HowToAcknowledge']}"
        )
    refs = description.get("ReferencesAndLinks") or []
    if refs:
        parts.append("References and links:\n" + "\n".join(f"- {ref}" for ref in refs))
    return "\n\n".join(parts)


def build_card(
    index: BidsIndex,
    *,
    manifest: Manifest,
    features: Mapping[str, Any],
    repo_id: str | None = None,
) -> str:
    """The text of ``README.md``.

    Args:
        index: The indexed BIDS dataset.
        manifest: The conversion's manifest (skipped files, row counts).
        features: The schema of the shards, as plain data (:func:`~brrrr.ingest.rows.bids_schema`).
        repo_id: The Hub repository, for the loading example.

    Returns:
        Markdown with a YAML header.
    """
    import yaml

    description = index.description
    skipped = {s["path"] for s in manifest.skipped}
    items = [it for it in index.items if it.relpath not in skipped]
    subjects: dict[str, set[str]] = defaultdict(set)
    files_per_subject: dict[str, int] = defaultdict(int)
    modality_files: dict[str, int] = defaultdict(int)
    modality_sessions: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for item in items:
        subject, session = item.entities["subject"], item.entities.get("session", "")
        subjects[subject].add(session)
        files_per_subject[subject] += 1
        modality_files[item.modality] += 1
        modality_sessions[item.modality].add((subject, session))
    n_sessions = sum(len(v - {""}) for v in subjects.values())
    name = description.get("Name") or index.root.name
    bids_license = description.get("License")
    meta: dict[str, Any] = {"license": license_id(bids_license)}
    if meta["license"] == "other":
        meta["license_name"] = str(bids_license)
    meta |= {
        "pretty_name": name,
        "tags": ["neuroimaging", "bids", "mri", "nifti", "medical"],
        "size_categories": [_size_category(manifest.num_rows)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
            }
        ],
    }
    where = repo_id or "<user>/<dataset>"
    level = manifest.options.get("level", "file")
    image_column = (
        "image" if level == "file" else (index.modalities[0] if index.modalities else "T1w")
    )
    cell = f'ds[0]["{image_column}"]' + ("" if level == "file" else "[0]")
    modality_rows = "\n".join(
        f"| {m} | {modality_files[m]} | {len(modality_sessions[m])} |" for m in index.modalities
    )
    subject_rows = "\n".join(
        f"| sub-{s} | {len(subjects[s] - {''})} | {files_per_subject[s]} |"
        for s in sorted(subjects)
    )
    schema_rows = "\n".join(f"| `{k}` | {_type_name(v)} |" for k, v in features.items())
    skipped_text = (
        "\n".join(f"- `{s['path']}`: {s['reason']}" for s in manifest.skipped)
        if manifest.skipped
        else "None."
    )
    body = f"""# {name}

{name}, converted from [BIDS](https://bids.neuroimaging.io) to Parquet with
[brrrr-ingest](https://github.com/neuroimaging-go-brrrr/neuroimaging-go-brrrr) (`brrrr bids to-hf`), one row per **{level}**.
Images are embedded as `datasets.Nifti` cells (the original `.nii`/`.nii.gz` bytes, unchanged);
header columns (shape, spacing, affine, axcodes, dtype) let you filter without decoding.
`manifest.json` lists every shard and every source file with its SHA-256
(`brrrr bids verify` checks them).

## Counts

{len(subjects)} subjects, {n_sessions} sessions, {len(items)} images, {manifest.num_rows} rows in
{manifest.num_shards} shards.

| modality | files | sessions |
|---|---|---|
{modality_rows}

<details><summary>Per subject</summary>

| subject | sessions | files |
|---|---|---|
{subject_rows}

</details>

Files left out because they could not be read: {skipped_text}

## How to load

```python
from datasets import load_dataset

ds = load_dataset("{where}", split="train")          # or, from a local copy:
# ds = load_dataset("parquet", data_files="data/*.parquet", split="train")
image = {cell}                 # a nibabel image, decoded on access
voxels = image.get_fdata()
```

## Schema

| column | type |
|---|---|
{schema_rows}

## License

{bids_license or "Not stated in dataset_description.json."}

## Citation

{_citation(description)}
"""
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def write_card(
    out: str | os.PathLike[str],
    *,
    index: BidsIndex,
    manifest: Manifest,
    features: Mapping[str, Any],
    repo_id: str | None = None,
) -> Path:
    """Write ``out/README.md`` atomically (see :func:`build_card`).

    Raises:
        FileWriteError: The folder is missing or the write fails (names the file).
    """
    text = build_card(index, manifest=manifest, features=features, repo_id=repo_id)
    return atomic_write(Path(out) / "README.md", text.encode("utf-8"))
