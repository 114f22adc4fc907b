"""Helpers shared by the tests: a tiny study on the synthetic data, written as TOML."""

from __future__ import annotations


def tiny_raw(root, **sections) -> dict:
    raw = {
        "model": {"name": "cnn", "width": 0.5},
        "data": {"name": "fashion-mnist", "root": str(root), "val_size": 200, "pad_to": 0,
                 "augment": "none"},
        "baseline": {"epochs": 2, "lr": 0.05, "batch_size": 64},
        "search": {"mode": "fine", "trials": 8, "prior": "lamp", "sampler": "tpe"},
        "budget": {"size": 0.3},
        "proxy": {"steps": 3, "val_limit": 100, "recalibrate": 64, "confirm_top": 2,
                  "confirm_seeds": 2, "confirm_val": 100},
        "scan": {"ratios": [0.0, 0.5, 0.9], "val_limit": 100},
        "latency": {"min_run_time": 0.01},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


def to_toml(raw: dict) -> str:
    lines = [f"name = {raw['name']!r}"] if "name" in raw else []
    for section, values in raw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            for k, v in values.items():
                if isinstance(v, bool):
                    v = str(v).lower()
                elif isinstance(v, str):
                    v = f'"{v}"'
                lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"
