"""The license of a backbone, where it can be known without a network.

In order: a model directory of an earlier run (its metadata records its own backbone's license);
a directory shipped inside an installed package (``backbone=splade_tiny``, ``minilm``): that
distribution's license metadata; any other local directory: the ``license:`` line of its
``README.md`` front matter (Hugging Face model cards); a hub name: :data:`HUB_LICENSES`, the
licenses stated on the model cards of the hub backbones of ``conf/backbone/``. ``None`` when
unknown, and for the backbone built from scratch (no upstream weights).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

#: Licenses on the Hub model cards of the hub backbones that ``conf/backbone/`` names.
HUB_LICENSES = {
    "bert-base-uncased": "apache-2.0",
    "google-bert/bert-base-uncased": "apache-2.0",
    "answerdotai/ModernBERT-base": "apache-2.0",
    **{f"jhu-clsp/ettin-encoder-{size}": "mit" for size in ("17m", "32m", "68m", "150m", "400m", "1b")},
}


def _package_license(path: Path) -> str | None:
    import importlib.metadata as md

    parts = path.resolve().parts
    if "site-packages" not in parts and "dist-packages" not in parts:
        return None
    i = max(i for i, p in enumerate(parts) if p in ("site-packages", "dist-packages"))
    if i + 1 >= len(parts):
        return None
    for dist in md.packages_distributions().get(parts[i + 1], []):
        meta = md.metadata(dist)
        value = meta.get("License-Expression") or meta.get("License")
        if value and value.strip() and value.strip().upper() != "UNKNOWN":
            return value.strip()
        for classifier in meta.get_all("Classifier") or []:
            if classifier.startswith("License :: OSI Approved :: "):
                return classifier.rsplit(" :: ", 1)[-1]
    return None


def _card_license(path: Path) -> str | None:
    card = path / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    m = re.search(r"^license:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", front, flags=re.MULTILINE)
    return m.group(1) if m else None


def backbone_license(name_or_path) -> str | None:
    if not name_or_path:
        return None
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_dir():
        meta = path / "splade_exp.json"
        if meta.is_file():
            return (json.loads(meta.read_text(encoding="utf-8")).get("backbone") or {}).get("license")
        return _package_license(path) or _card_license(path)
    return HUB_LICENSES.get(str(name_or_path))
