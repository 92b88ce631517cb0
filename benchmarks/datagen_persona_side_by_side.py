"""Print a markdown side-by-side of a generated persona and a real one from the shared data.

python3 benchmarks/datagen_persona_side_by_side.py GENERATED_RAW.json REAL_RAW.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def flat(p: dict, keys: list[str]) -> dict[str, str]:
    out = {}
    for k in keys:
        v = p.get(k, "")
        if isinstance(v, dict):
            v = "; ".join(
                f"{a}: {', '.join(map(str, b)) if isinstance(b, list) else b}" for a, b in v.items()
            )
        elif isinstance(v, list):
            v = f"{len(v)} items, e.g. " + "; ".join(map(str, v[:3]))
        out[k] = str(v).replace("|", "/").replace("\n", " ")[:300]
    return out


def load_generated(path: str) -> dict:
    """A raw_data file, or a generation folder (its work/ artifacts, before the release exists)."""
    p = Path(path)
    if p.is_file():
        return next(iter(json.load(open(p)).values()))
    persona = json.load(open(p / "work" / "personas" / "0.json"))
    prefs = json.load(open(p / "work" / "preferences" / "0.json"))
    names = {
        "stereotypical_pref": "stereotypical_preferences",
        "anti_stereotypical_pref": "anti_stereotypical_preferences",
    }
    for x in prefs["preferences"]:
        key = names.get(x["pref_type"], x["pref_type"])
        persona.setdefault(key, []).append(x["text"])
    persona["preference_updates"] = prefs["preference_updates"]
    return persona


def main() -> None:
    gen = load_generated(sys.argv[1])
    real = next(iter(json.load(open(sys.argv[2])).values()))
    keys = [
        "short_persona",
        "name",
        "age",
        "gender",
        "race",
        "nationality",
        "location",
        "personality",
        "education",
        "employment",
        "technology_profile",
        "speaking_style",
        "stereotypical_preferences",
        "anti_stereotypical_preferences",
        "neutral_preferences",
        "therapy_background",
        "health_and_medical_conditions",
        "preference_updates",
    ]
    g, r = flat(gen, keys), flat(real, keys)
    print("| field | generated (local/qwen2.5-0.5b) | real (release) |")
    print("|---|---|---|")
    for k in keys:
        print(f"| {k} | {g[k]} | {r[k]} |")
    gc = sum(len(v) for v in gen.get("conversations", {}).values())
    rc = sum(len(v) for v in real.get("conversations", {}).values())
    print(
        f"| conversation blocks | {gc} in {len(gen.get('conversations', {}))} scenarios | {rc} in {len(real.get('conversations', {}))} scenarios |"
    )


if __name__ == "__main__":
    main()
