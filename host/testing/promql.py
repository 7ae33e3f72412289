"""What the shipped Grafana dashboard's PromQL reads: metric names and the labels named near them, so
tests can check every one against what a running host exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "deploy" / "grafana-dashboard.json"


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    doc = json.loads(path.read_text())
    queries = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return queries


def metrics_and_labels(query: str) -> list[tuple[str, set[str]]]:
    """Each agenthost metric a PromQL query reads, with the labels it names: its matchers, and the
    grouping labels (by, on, without) of the query."""
    found = []
    for m in re.finditer(r"\b(agenthost_[a-z_]+)\b(\{[^}]*\})?", query):
        labels = set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", m.group(2) or ""))
        found.append((m.group(1), labels))
    grouping: set[str] = set()
    for g in re.findall(r"\b(?:by|on|without)\s*\(([^)]*)\)", query):
        grouping |= {x.strip() for x in g.split(",") if x.strip()}
    return [(name, labels | grouping) for name, labels in found]


def exported(metrics_text: str) -> dict[str, set[str]]:
    """metric name -> the label names it has, from a /metrics scrape."""
    found: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            found.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    return found
